"""manage.py launch_round — create a round over a corpus and start its model stages on the workers.

With --wait it follows the round with a progress bar per stage until it reaches review (or fails).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from generation import services, stages
from generation.models import Corpus, ModelVersion, Round
from generation.pipeline.config import ConfigError, stage_order


class Command(BaseCommand):
    help = "Create a round over a corpus and launch augment → curate → rewrite on the RQ workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--corpus", help="corpus name (default: the newest corpus)")
        parser.add_argument("--model", help="base model directory (default: BACKFORTH_DEFAULT_MODEL)")
        parser.add_argument("--sample-size", type=int, default=200)
        parser.add_argument("--chunk-size", type=int, default=16)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--threshold", type=float, help="keep pairs scoring at least this (default 4.5)")
        group.add_argument("--top-k", type=int, help="keep the k best-scored pairs instead")
        parser.add_argument("--backend", default="auto", choices=["auto", "vllm", "transformers"])
        parser.add_argument("--order", default="filter_rewrite", choices=["filter_rewrite", "rewrite_filter"])
        parser.add_argument("--wait", action="store_true", help="follow progress until the round reaches review")
        parser.add_argument("--unless-exists", action="store_true", help="do nothing if the corpus has a round")

    def handle(self, *args: Any, **options: Any) -> None:
        corpora = Corpus.objects.order_by("-created_at")
        corpus = corpora.filter(name=options["corpus"]).first() if options["corpus"] else corpora.first()
        if corpus is None:
            raise CommandError(f"no corpus {options['corpus'] or ''} found: import one first")
        if options["unless_exists"] and corpus.rounds.exists():
            rnd = corpus.rounds.order_by("-number").first()
            self.stdout.write(f"Round {rnd.number} already exists for '{corpus.name}' ({rnd.state}); not launching")
            return
        path = Path(options["model"] or settings.DEFAULT_MODEL).resolve()
        base, _ = ModelVersion.objects.get_or_create(role="base", path=str(path), defaults={"name": path.name})
        curation = (
            {"threshold": None, "top_k": options["top_k"]}
            if options["top_k"]
            else {"threshold": options["threshold"] if options["threshold"] is not None else 4.5}
        )
        config = {
            "backend": options["backend"],
            "sample_size": options["sample_size"],
            "chunk_size": options["chunk_size"],
            "order": options["order"],
            "curation": curation,
        }
        try:
            rnd = services.round_create(corpus=corpus, base_model=base, config=config)
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        stages.stage_launch(round=rnd, stage="augment")
        self.stdout.write(f"Round {rnd.number} launched on '{corpus.name}' (config {rnd.config_hash[:12]})")
        if options["wait"]:
            self.follow(rnd)

    def follow(self, rnd: Round) -> None:
        for stage in stage_order(rnd.config):
            bar = None
            while True:
                rnd.refresh_from_db()
                if rnd.state in (Round.State.FAILED, Round.State.CANCELLED):
                    if bar:
                        bar.close()
                    raise CommandError(f"round {rnd.number} {rnd.state}: {rnd.error or 'see the status page'}")
                progress = stages.stage_progress(round=rnd, stage=stage)
                if progress["launched"] and bar is None:
                    bar = tqdm(total=progress["total"], desc=f"round {rnd.number} {stage}", unit="item")
                if bar is not None:
                    bar.n = progress["done"]
                    bar.refresh()
                finished = progress["launched"] and progress["chunks"].get("done", 0) == sum(
                    progress["chunks"].values()
                )
                if finished or rnd.state == Round.State.REVIEW:
                    break
                time.sleep(1)
            if bar:
                bar.close()
        counts = {s: rnd.candidates.filter(status=s).count() for s in ("kept", "dropped", "error")}
        self.stdout.write(f"Round {rnd.number} is ready for review: {counts}")
