"""manage.py demo_data — demo users (one per role), the demo seed set and the demo corpus. Idempotent.

Each demo user gets a random password when it is created, printed once here; later runs leave it alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from annotation import services as annotation_services
from annotation.models import SeedExample
from app.roles import ROLES
from generation.models import Corpus
from generation.services.corpus import ingest_files

SEED_FILE = Path(__file__).resolve().parents[2] / "demo" / "seed.jsonl"
DEMO_CORPUS = "Python reference (demo)"


def write_demo_documents(path: Path) -> Path:
    """Real human-written documentation that ships with every Python: the reference topics of pydoc, one JSONL
    document each, for the ingestion pipeline to clean, split and deduplicate like any corpus."""
    from pydoc_data.topics import topics

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for topic in sorted(topics):
            doc = {"id": f"pydoc:{topic}", "text": topics[topic], "url": ""}
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return path


class Command(BaseCommand):
    help = "Create demo users (admin, curator, annotator), the demo seed set and the demo corpus."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        passwords = annotation_services.demo_users_ensure()

        if SeedExample.objects.filter(provenance__kind="demo").exists():
            self.stdout.write("Demo seed set already loaded")
        else:
            rows = []
            with SEED_FILE.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, start=1):
                    row = json.loads(line)
                    row["provenance"] = {"kind": "demo", "file": SEED_FILE.name, "line": lineno}
                    row["tags"] = ["demo"]
                    rows.append(row)
            created = annotation_services.seed_examples_create(rows=rows)
            n_safety = sum(1 for ex in created if ex.is_safety)
            self.stdout.write(f"Loaded {len(created)} demo seed examples ({n_safety} safety)")

        corpus, created = Corpus.objects.get_or_create(
            name=DEMO_CORPUS,
            defaults={
                "description": "Passages of the Python language reference (pydoc_data.topics, shipped with Python).",
            },
        )
        if created or not corpus.segments.exists():
            # Through the real ingestion pipeline: cleaning, passage splitting, quality filters, dedup.
            docs = write_demo_documents(Path(settings.DATA_DIR) / "demo" / "pydoc_topics.jsonl")
            report = ingest_files(corpus=corpus, paths=[docs])
            drops = ", ".join(f"{k} {v}" for k, v in report.drops.most_common(4))
            self.stdout.write(
                f"Demo corpus '{corpus.name}': {report.documents} documents → {report.added} passages "
                f"(dropped: {drops or 'none'})"
            )
        else:
            self.stdout.write(f"Demo corpus '{corpus.name}' already holds {corpus.segments.count()} passages")

        write_demo_users(self.stdout, passwords)


def write_demo_users(out: Any, passwords: dict[str, str | None]) -> None:
    """The demo logins, each new password shown this once (it is stored only as a hash)."""
    out.write("Demo users (username / password):")
    for role in ROLES:
        shown = passwords.get(role) or "(unchanged; `python manage.py reset_demo_passwords` sets new ones)"
        out.write(f"  {role:<10} {role} / {shown}")
