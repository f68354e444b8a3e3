"""manage.py close_review --round N — end a round's review: reviewed pairs join the seed set, and the forward
model is trained and evaluated (the same as the button on the round page)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.models import Round
from generation.services.rounds import ReviewNotOpen, round_close_review


class Command(BaseCommand):
    help = "Close the review of a round: feed accepted/edited pairs into the seed set and train the forward model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--round", type=int, required=True, help="round number")

    def handle(self, *args: Any, **options: Any) -> None:
        rnd = Round.objects.filter(number=options["round"]).first()
        if rnd is None:
            raise CommandError(f"no round {options['round']}")
        try:
            counts = round_close_review(round=rnd)
        except ReviewNotOpen as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Round {rnd.number}: {counts['added_to_seed']} pairs added to the seed set, {counts['rejected']} "
            f"rejected, {counts['unreviewed']} left unreviewed; training the forward model"
        )
