"""manage.py import_seed PATH [--format F] [--source S] [--all-turns] [--map TARGET=COLUMN …] — import a seed-set
file (or a Hugging Face `datasets` directory), all rows or none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation import services
from generation.pipeline import formats


class Command(BaseCommand):
    help = (
        "Import seed examples from Alpaca (.json/.jsonl), TRL messages, OpenAssistant, LIMA or ShareGPT "
        "conversations (.json/.jsonl), a table (.csv, .tsv, .parquet) or a Hugging Face datasets directory "
        "(save_to_disk). The whole file is validated first: one bad record and nothing is imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the file (UTF-8 for text formats) or datasets directory to import")
        parser.add_argument(
            "--format", choices=formats.FORMATS_IN, help="the file's format (default: detected from name and content)"
        )
        parser.add_argument(
            "--source",
            choices=formats.SOURCES,
            default="seed",
            help="the source of records that do not name one (default: seed)",
        )
        parser.add_argument(
            "--all-turns",
            action="store_true",
            help="conversations: every user → assistant turn becomes a pair of its own (without the turns before "
            "it); default: the first turn only",
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="TARGET=COLUMN",
            help=f"tables: the column of a target ({', '.join(formats.MAP_TARGETS)}), e.g. --map instruction=prompt; "
            "unmapped targets are looked up by common names",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        try:
            mapping = formats.parse_mapping(options["map"])
        except ValueError as e:
            raise CommandError(f"--map {e}") from e
        try:
            fmt, created = services.seed_import(
                user=None,
                name=path.name,
                path=path,
                fmt=options["format"],
                source=options["source"],
                turns="all" if options["all_turns"] else "first",
                mapping=mapping,
            )
        except OSError as e:
            raise CommandError(f"{path}: cannot read the file ({e.strerror or e})") from e
        except ValueError as e:  # formats.FormatError included: every bad line or row
            raise CommandError(f"{path}: {e}") from e
        self.stdout.write(f"Imported {len(created)} examples from {path} ({fmt})")
