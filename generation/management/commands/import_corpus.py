"""manage.py import_corpus PATH… --corpus NAME — read web text (JSONL/JSONL.gz in Dolma or C4 shape, plain
text, Parquet, WARC, saved HTML pages; a directory is read recursively), clean it into self-contained passages,
remove exact and near duplicates and passages that overlap the evaluation prompts, and add the rest to a corpus.
All or nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from generation.services.corpus import REFUSED, corpus_import


class Command(BaseCommand):
    help = "Import web text files into a corpus as cleaned, deduplicated passages (one transaction)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", help="files or directories (read recursively) to import")
        parser.add_argument("--corpus", required=True, help="corpus name (created if missing)")
        parser.add_argument("--min-chars", type=int, default=600)
        parser.add_argument("--max-chars", type=int, default=3000)
        parser.add_argument("--near-threshold", type=float, default=0.8, help="MinHash Jaccard for near duplicates")

    def handle(self, *args: Any, **options: Any) -> None:
        bar = tqdm(desc=f"importing into {options['corpus']}", unit="doc", disable=options["verbosity"] == 0)
        try:
            corpus, report = corpus_import(
                name=options["corpus"],
                paths=options["paths"],
                min_chars=options["min_chars"],
                max_chars=options["max_chars"],
                near_threshold=options["near_threshold"],
                on_document=lambda n: bar.update(1),
            )
        except REFUSED as exc:
            raise CommandError(f"{exc} — nothing was imported") from exc
        finally:
            bar.close()
        drops = ", ".join(f"{k} {v}" for k, v in report.drops.most_common()) or "none"
        skipped = report.skipped()
        self.stdout.write(
            f"{corpus.name}: {report.read['files']} files, {report.documents} documents → {report.passages} "
            f"passages → {report.added} new segments in {report.seconds:.1f} s. Dropped: {drops}"
            + (f". Skipped while reading: {skipped}" if skipped else "")
        )
