"""manage.py run_stage --round N --stage augment|curate|rewrite — run a stage here, with a progress bar.

The same code path as the RQ workers: the stage's chunk jobs are created (once), then claimed and run in this
process; chunks a worker already took are left to it.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from generation.handlers import run_job
from generation.models import Job, Round
from generation.pipeline import lifecycle
from generation.selectors import stage_progress
from generation.services.jobs import StageError
from generation.services.rounds import STAGES, stage_launch, stage_retry


class Command(BaseCommand):
    help = "Run one model stage of a round in this process (progress bar; same code as the workers)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--round", type=int, required=True, help="round number")
        parser.add_argument("--stage", required=True, choices=STAGES)
        parser.add_argument("--retry", action="store_true", help="re-run failed or cancelled chunks too")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rnd = Round.objects.get(number=options["round"])
        except Round.DoesNotExist:
            raise CommandError(f"there is no round {options['round']}") from None
        stage = options["stage"]
        try:
            stage_launch(round=rnd, stage=stage, enqueue=False)
        except (StageError, lifecycle.IllegalTransition) as exc:
            raise CommandError(str(exc)) from exc
        if options["retry"]:
            stage_retry(round=rnd, stage=stage)
        progress = stage_progress(round=rnd, stage=stage)
        bar = tqdm(total=progress["total"], initial=progress["done"], desc=f"round {rnd.number} {stage}", unit="item")
        stop = threading.Event()

        def poll() -> None:
            from django.db import connection

            try:
                while not stop.wait(1.0):
                    bar.n = stage_progress(round=rnd, stage=stage)["done"]
                    bar.refresh()
            finally:
                connection.close()

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        failed = []
        try:
            for job in rnd.jobs.filter(stage=stage, status=Job.Status.QUEUED).order_by("chunk"):
                if run_job(job.pk) == Job.Status.FAILED:
                    failed.append(job.pk)
        finally:
            stop.set()
            poller.join()
            bar.n = stage_progress(round=rnd, stage=stage)["done"]
            bar.close()
        final = stage_progress(round=rnd, stage=stage)
        self.stdout.write(f"{stage}: {final['done']}/{final['total']} items; chunks {final['chunks']}")
        if failed:
            errors = "\n".join(
                f"  job {j.pk}: {j.error.splitlines()[0] if j.error else '?'}"
                for j in Job.objects.filter(pk__in=failed)
            )
            raise CommandError(f"{len(failed)} chunk(s) failed:\n{errors}\nfix the cause, then run again with --retry")
