"""manage.py reset_demo_passwords — new random passwords for the demo users (one per role), printed once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from annotation import services as annotation_services
from app.management.commands.demo_data import write_demo_users


class Command(BaseCommand):
    help = "Set new random passwords for the demo users (created where missing) and print them."

    def handle(self, *args: Any, **options: Any) -> None:
        write_demo_users(self.stdout, annotation_services.demo_passwords_reset())
