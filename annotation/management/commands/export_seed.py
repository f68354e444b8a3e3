"""manage.py export_seed --format F [--source S] [-o PATH|-] — stream the active seed set to a file or stdout."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import SeedExample
from generation.pipeline import formats

CHUNK_SIZE = 2000


class Command(BaseCommand):
    help = "Export the active seed examples as Alpaca (.json/.jsonl) or TRL messages (.jsonl)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, choices=formats.FORMATS_OUT)
        parser.add_argument("--source", choices=formats.SOURCES, help="only examples of this source")
        parser.add_argument("-o", "--output", default="-", help="the file to write, or - for stdout (default)")

    def handle(self, *args: Any, **options: Any) -> None:
        fmt, output = options["format"], options["output"]
        examples = SeedExample.objects.filter(is_active=True)
        if options["source"]:
            examples = examples.filter(source=options["source"])
        rows = examples.order_by("id").values("id", "instruction", "response", "source", "tags", "version")
        count = 0

        def counted() -> Iterator[dict[str, Any]]:
            nonlocal count
            for row in rows.iterator(chunk_size=CHUNK_SIZE):
                count += 1
                yield row

        chunks = formats.export_rows(counted(), fmt)
        if output == "-":
            for chunk in chunks:
                self.stdout.write(chunk, ending="")
        else:
            self._write_file(Path(output), chunks)
        where = "stdout" if output == "-" else output
        self.stderr.write(f"Exported {count} examples to {where} ({fmt})", style_func=lambda s: s)

    @staticmethod
    def _write_file(path: Path, chunks: Iterator[str]) -> None:
        """Writes next to `path` and renames at the end: a failed export never leaves a half-written file."""
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as e:
            raise CommandError(f"{path}: cannot write ({e.strerror or e})") from e
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would make the export private to this user
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                for chunk in chunks:
                    f.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
