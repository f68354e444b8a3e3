"""manage.py launch_round — create a round over a corpus and start it on the workers.

The round runs train_backward → augment → curate → rewrite → review → train_forward → evaluate. With --wait
it follows the round with a progress bar per stage until it waits for review or is closed (or fails).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from generation import selectors
from generation.models import Corpus, ModelVersion, Round
from generation.pipeline import signals
from generation.pipeline.config import ConfigError, RoundConfig
from generation.selectors import stage_progress
from generation.services.rounds import GuidelinesRefused, round_create, round_start


def _nll_line(label: str, h: dict[str, Any]) -> str:
    old, new, delta = h["old"], h["new"], h["delta"]
    ci = delta["ci"] or [delta["nll"], delta["nll"]]
    verdict = {True: "better", False: "worse", None: "no clear change"}[h.get("improved")]
    return (
        f"{label}: {h['old_model']} {old['nll']:.3f} [{old['ci'][0]:.3f}, {old['ci'][1]:.3f}] → {h['new_model']} "
        f"{new['nll']:.3f} [{new['ci'][0]:.3f}, {new['ci'][1]:.3f}] nats/token; Δ {delta['nll']:+.3f} "
        f"[{ci[0]:+.3f}, {ci[1]:+.3f}]: {verdict}"
        if old["ci"] and new["ci"]
        else f"{label}: {h['old_model']} {old['nll']:.3f} → {h['new_model']} {new['nll']:.3f} nats/token"
    )


def round_report(rnd: Round) -> list[str]:
    """What a round showed, for the terminal: its headline, the held-out NLL with intervals, the judge and
    how reliable it was, the training losses, and what the output gates dropped. Honest when nothing improved."""
    ev = rnd.metrics.get("evaluation") or {}
    lines = []
    if ev.get("headline"):
        lines.append(f"Result: {ev['headline']['text']}")
    for kind, label in (("forward", "held-out answers"), ("backward", "held-out instructions")):
        h = (ev.get("heldout") or {}).get(kind)
        if h and h.get("n"):
            lines.append(_nll_line(f"{label} ({h['n']})", h))
    if ev.get("n"):
        consistency = ev.get("judge_consistency")
        reliable = consistency is not None and consistency >= ev.get("judge_min_consistency", 0.5)
        lines.append(
            f"judge: win rate {ev['win_rate']:.0%}, ties {ev['tie_rate']:.0%} over {ev['n']} prompts; "
            + (
                f"order-consistent on {consistency:.0%}"
                if reliable
                else f"order-consistent on only {consistency or 0:.0%}: not reliable at this model size"
            )
        )
    for model in (rnd.backward_model, rnd.forward_model):
        curve = (model.metrics or {}).get("loss_curve") if model else None
        if curve:
            lines.append(f"{model.name}: training loss {curve[0][1]:.3f} → {curve[-1][1]:.3f} over {len(curve)} steps")
    gated = selectors.round_gate_counts(rnd)
    kept = rnd.candidates.filter(kept_by_curation=True).count()
    lines.append(
        f"curation kept {kept} pairs; output gates dropped "
        + (", ".join(f"{g['n']} ({g['label']})" for g in gated) if gated else "none")
    )
    if not ev:
        lines.append("not evaluated")
    return lines


class Command(BaseCommand):
    help = "Create a round over a corpus and launch it (training, generation, evaluation) on the RQ workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--corpus", help="corpus name (default: the newest corpus)")
        parser.add_argument("--model", help="base model directory (default: BACKFORTH_DEFAULT_MODEL)")
        parser.add_argument("--sample-size", type=int, default=200)
        parser.add_argument(
            "--chunk-size", type=int, default=RoundConfig().chunk_size, help="items per job (default: %(default)s)"
        )
        parser.add_argument(
            "--keep",
            choices=signals.KEEP_RULES,
            help="the signal that ranks pairs (default: agreement, which works at every model size)",
        )
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--threshold", type=float, help="keep pairs at least this on the keep signal's scale (agreement: 0.1)"
        )
        group.add_argument("--top-k", type=int, help="keep the k best-scored pairs instead")
        parser.add_argument("--min-agreement", type=float, help="floor on agreement under any keep rule")
        parser.add_argument("--backend", default="auto", choices=["auto", "vllm", "transformers"])
        parser.add_argument(
            "--tensor-parallel-size",
            type=int,
            default=1,
            help="GPUs each vLLM engine splits the model over; a worker must own that many (default: 1)",
        )
        parser.add_argument("--order", default="filter_rewrite", choices=["filter_rewrite", "rewrite_filter"])
        parser.add_argument(
            "--review",
            default="human",
            choices=["human", "skip"],
            help="skip: train the forward model on the kept pairs unreviewed (Humpback's automatic loop)",
        )
        parser.add_argument("--train-steps", type=int, help="cap on optimiser steps per fine-tuning run")
        parser.add_argument("--no-train-backward", action="store_true", help="augment with the base model")
        parser.add_argument("--eval-limit", type=int, help="evaluate on the first N held-out prompts only")
        parser.add_argument("--eval-max-new-tokens", type=int, default=256)
        parser.add_argument(
            "--guidelines",
            type=Path,
            metavar="FILE.md",
            help="guidelines for the annotators: a markdown file, shown on the review screen (editable later)",
        )
        parser.add_argument("--wait", action="store_true", help="follow progress until review or the end")
        parser.add_argument("--unless-exists", action="store_true", help="do nothing if the corpus has a round")
        parser.add_argument(
            "--if-fewer-than", type=int, metavar="N", help="do nothing if the corpus already has N rounds or more"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        corpora = Corpus.objects.order_by("-created_at")
        corpus = corpora.filter(name=options["corpus"]).first() if options["corpus"] else corpora.first()
        if corpus is None:
            raise CommandError(f"no corpus {options['corpus'] or ''} found: import one first")
        if options["unless_exists"] and corpus.rounds.exists():
            rnd = corpus.rounds.order_by("-number").first()
            self.stdout.write(f"Round {rnd.number} already exists for '{corpus.name}' ({rnd.state}); not launching")
            return
        if options["if_fewer_than"] is not None and corpus.rounds.count() >= options["if_fewer_than"]:
            self.stdout.write(f"'{corpus.name}' already has {corpus.rounds.count()} rounds; not launching another")
            return
        path = Path(options["model"] or settings.DEFAULT_MODEL).resolve()
        base, _ = ModelVersion.objects.get_or_create(role="base", path=str(path), defaults={"name": path.name})
        curation: dict[str, Any] = {}
        if options["keep"]:
            curation["keep"] = options["keep"]
        if options["top_k"] is not None:
            curation["top_k"] = options["top_k"]
        if options["threshold"] is not None:
            curation["threshold"] = options["threshold"]
        if options["min_agreement"] is not None:
            curation["min_agreement"] = options["min_agreement"]
        config = {
            "backend": options["backend"],
            "tensor_parallel_size": options["tensor_parallel_size"],
            "sample_size": options["sample_size"],
            "chunk_size": options["chunk_size"],
            "order": options["order"],
            "curation": curation,
            "review": {"mode": options["review"]},
            "train_backward": {"enabled": not options["no_train_backward"]},
            "training": {"max_steps": options["train_steps"]},
            "evaluation": {"limit": options["eval_limit"], "max_new_tokens": options["eval_max_new_tokens"]},
        }
        guidelines = ""
        if options["guidelines"] is not None:
            try:
                guidelines = options["guidelines"].read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"--guidelines {options['guidelines']}: {exc}") from exc
        try:
            rnd = round_create(corpus=corpus, base_model=base, config=config, guidelines=guidelines)
        except (ConfigError, GuidelinesRefused) as exc:
            raise CommandError(str(exc)) from exc
        round_start(round=rnd)
        self.stdout.write(f"Round {rnd.number} launched on '{corpus.name}' (config {rnd.config_hash[:12]})")
        if options["wait"]:
            self.follow(rnd)

    def follow(self, rnd: Round) -> None:
        for stage in rnd.cfg.round_stages():
            if stage == Round.State.REVIEW:
                rnd.refresh_from_db()
                if rnd.state == Round.State.REVIEW:
                    counts = {s: rnd.candidates.filter(status=s).count() for s in ("kept", "dropped", "error")}
                    self.stdout.write(
                        f"Round {rnd.number} is ready for review: {counts}. Close the review on its page "
                        f"or with `manage.py close_review --round {rnd.number}`."
                    )
                    return
                continue
            self._follow_stage(rnd, stage)
        rnd.refresh_from_db()
        self.stdout.write(self.style.SUCCESS(f"Round {rnd.number} {rnd.state}"))
        for line in round_report(rnd):
            self.stdout.write(f"  {line}")

    def _follow_stage(self, rnd: Round, stage: str) -> None:
        order = rnd.cfg.round_stages()
        bar = None
        while True:
            rnd.refresh_from_db()
            if rnd.state in (Round.State.FAILED, Round.State.CANCELLED):
                if bar:
                    bar.close()
                raise CommandError(f"round {rnd.number} {rnd.state}: {rnd.error or 'see the round page'}")
            progress = stage_progress(round=rnd, stage=stage)
            if progress["launched"] and bar is None:
                unit = "step" if stage.startswith("train") else "item"
                bar = tqdm(total=progress["total"], desc=f"round {rnd.number} {stage}", unit=unit)
            if bar is not None:
                bar.total = progress["total"]
                bar.n = progress["done"]
                bar.refresh()
            moved_on = rnd.state in order and order.index(rnd.state) > order.index(stage)
            if moved_on or rnd.state == Round.State.CLOSED:
                break
            time.sleep(1)
        if bar:
            bar.close()
