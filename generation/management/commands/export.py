"""manage.py export (--round N | --seed) --format F --out PATH — a training-ready dataset with its manifest."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.models import Round
from generation.services import export


class Command(BaseCommand):
    help = (
        "Export a round's reviewed pairs or the seed set (messages JSONL, Alpaca JSON, Parquet, HF datasets), or a "
        "round's human decisions as TRL preference data (dpo_* pairs, kto_* rows: JSONL, Parquet, HF datasets)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--round", type=int, help="round number: its accepted and edited pairs")
        which.add_argument("--seed", action="store_true", help="the active seed set")
        parser.add_argument("--format", choices=export.ALL_FORMATS, default="messages_jsonl")
        parser.add_argument("--out", required=True, help="file (or directory for hf_dataset, dpo/kto_hf_dataset)")
        parser.add_argument("--include-unreviewed", action="store_true", help="round: also kept, unreviewed pairs")
        parser.add_argument("--source", choices=["seed", "web", "safety"], help="seed: only this source")

    def handle(self, *args: Any, **options: Any) -> None:
        fmt = options["format"]
        if options["seed"]:
            if export.preference_kind(fmt):
                raise CommandError(
                    f"{fmt} comes from a round's reviews: use --round N (the seed set has no rejections)"
                )
            rows, about = export.seed_rows(source=options["source"]), {"kind": "seed", "source": options["source"]}
            manifest = export.export_dataset(rows=rows, fmt=fmt, out=options["out"], about=about)
        else:
            rnd = Round.objects.filter(number=options["round"]).first()
            if rnd is None:
                raise CommandError(f"no round {options['round']}")
            if options["include_unreviewed"] and export.preference_kind(fmt):
                raise CommandError("--include-unreviewed is for SFT formats: nobody judged an unreviewed pair")
            manifest = export.round_export(
                rnd=rnd, fmt=fmt, out=options["out"], include_unreviewed=options["include_unreviewed"]
            )
        counts = manifest.get("counts")
        detail = f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else ""
        self.stdout.write(f"Exported {manifest['count']} records to {manifest['path']} (+ .manifest.json){detail}")
