"""manage.py import_seed PATH [--format F] [--source S] — import a seed-set file, all rows or none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from annotation import services
from generation.pipeline import formats

DETECT_HEAD_CHARS = 64 * 1024


class Command(BaseCommand):
    help = (
        "Import seed examples from an Alpaca (.json/.jsonl), TRL messages (.jsonl) or OpenAssistant (.jsonl) file. "
        "The whole file is validated first: one bad record and nothing is imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the file to import (UTF-8)")
        parser.add_argument(
            "--format", choices=formats.FORMATS_IN, help="the file's format (default: detected from name and content)"
        )
        parser.add_argument(
            "--source",
            choices=formats.SOURCES,
            default="seed",
            help="the source of records that do not name one (default: seed)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["path"]
        name = Path(path).name
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise CommandError(f"{path}: cannot read the file ({e.strerror or e})") from e
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CommandError(
                f"{path}: not UTF-8 text (invalid byte 0x{data[e.start]:02x} at byte offset {e.start})"
            ) from e

        try:
            fmt = options["format"] or formats.detect_format(name, text[:DETECT_HEAD_CHARS])
            rows = formats.parse(text, fmt, default_source=options["source"])
        except formats.FormatError as e:
            raise CommandError(f"{path}: {e}") from e
        for row in rows:
            row["provenance"] = {"kind": "import", "file": name, "format": fmt, "line": row["provenance"]["line"]}

        try:
            with transaction.atomic():
                created = services.seed_examples_create(rows=rows, created_by=None)
        except ValueError as e:
            raise CommandError(f"{path}: {e}") from e
        self.stdout.write(f"Imported {len(created)} examples from {path} ({fmt})")
