"""manage.py reconcile — re-enqueue jobs that Redis lost or whose worker died (the database decides)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from generation.services.jobs import jobs_reconcile


class Command(BaseCommand):
    help = "Re-enqueue queued jobs missing from Redis and running jobs whose heartbeat stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stale-after", type=float, default=60.0, help="seconds without heartbeat (default 60)")
        parser.add_argument("--grace", type=float, default=10.0, help="ignore jobs queued less than this ago")
        parser.add_argument("--loop", type=float, default=0, help="repeat every N seconds (0: once)")

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            counts = jobs_reconcile(stale_after=options["stale_after"], grace=options["grace"])
            self.stdout.write(f"requeued {counts['stale']} stale and {counts['lost']} lost jobs")
            if not options["loop"]:
                return
            time.sleep(options["loop"])
