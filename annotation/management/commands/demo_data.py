"""manage.py demo_data — demo users (one per role), the demo seed set and the demo corpus. Idempotent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from annotation import services as annotation_services
from annotation.models import SeedExample
from annotation.roles import ROLES
from generation import services as generation_services
from generation.models import Corpus
from generation.pipeline.text import split_passages

SEED_FILE = Path(__file__).resolve().parents[2] / "demo" / "seed.jsonl"
DEMO_CORPUS = "Python reference (demo)"
DEMO_PASSWORDS = {role: f"backforth-{role}" for role in ROLES}


def demo_corpus_passages() -> list[dict[str, Any]]:
    """Real human-written documentation that ships with every Python: the reference topics of pydoc."""
    from pydoc_data.topics import topics

    passages = []
    for topic in sorted(topics):
        for i, text in enumerate(split_passages(topics[topic], min_chars=300, max_chars=2000)):
            passages.append({"text": text, "source_id": f"pydoc:{topic}#{i}", "meta": {"topic": topic}})
    return passages


class Command(BaseCommand):
    help = "Create demo users (admin, curator, annotator), the demo seed set and the demo corpus."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        for role in ROLES:
            annotation_services.user_create_with_role(username=role, password=DEMO_PASSWORDS[role], role=role)

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

        corpus, _ = Corpus.objects.get_or_create(
            name=DEMO_CORPUS,
            defaults={
                "description": "Passages of the Python language reference (pydoc_data.topics, shipped with Python).",
                "sources": [{"kind": "pydoc_data.topics"}],
            },
        )
        added, duplicates = generation_services.corpus_add_passages(corpus=corpus, passages=demo_corpus_passages())
        total = corpus.segments.count()
        self.stdout.write(
            f"Demo corpus '{corpus.name}': {total} segments "
            f"({added} added now, {duplicates} duplicate passages skipped)"
        )

        self.stdout.write("Demo users (username / password):")
        for role in ROLES:
            self.stdout.write(f"  {role:<10} {role} / {DEMO_PASSWORDS[role]}")
