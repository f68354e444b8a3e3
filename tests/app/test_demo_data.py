import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.management import call_command

from annotation import services as annotation_services
from annotation.models import SeedExample
from app.roles import user_role
from generation.models import Corpus, Segment
from generation.services.corpus import corpus_add_passages
from tests.factories import CorpusFactory

pytestmark = pytest.mark.django_db


def printed_passwords(output: str) -> dict[str, str]:
    """username -> password from the "  admin      admin / <password>" lines the commands print."""
    rows = [line.split() for line in output.splitlines() if line.startswith("  ") and " / " in line]
    return {row[1]: row[3] for row in rows if len(row) >= 4}


def test_demo_data_meets_the_brief_and_is_idempotent():
    out = io.StringIO()
    call_command("demo_data", stdout=out)
    seeds = SeedExample.objects.filter(provenance__kind="demo")
    # The brief asks for at least 30 seed pairs, 5 of them safety ones: app/demo/seed.jsonl holds 38 and 6.
    assert seeds.count() == 38
    assert seeds.filter(source="safety").count() == 6
    corpus = Corpus.objects.get(name="Python reference (demo)")
    # At least the brief's 100 passages. A bound, not one count: the corpus is the running Python's pydoc topics,
    # which change between patch releases (3.11's gives 79 documents and 103 passages now).
    assert corpus.segments.count() >= 100
    # Through the real ingestion pipeline: its passage bounds, its filters (recorded), no ASCII-table rules.
    assert all(600 <= s.char_count <= 3000 for s in corpus.segments.all())
    [report] = corpus.stats["imports"]
    assert report["documents"] > 50 and report["added"] == corpus.segments.count() and report["drops"]  # (the same)
    assert not corpus.segments.filter(text__contains="+---").exists()
    users = {u.username: user_role(u) for u in get_user_model().objects.all()}
    assert users == {"admin": "admin", "curator": "curator", "annotator": "annotator"}

    # Random passwords, valid by the password validators, printed once.
    passwords = printed_passwords(out.getvalue())
    assert set(passwords) == {"admin", "curator", "annotator"}
    User = get_user_model()
    for username, password in passwords.items():
        validate_password(password, user=User.objects.get(username=username))
        assert User.objects.get(username=username).check_password(password)
        assert password != f"backforth-{username}" and len(password) == 16  # secrets.token_urlsafe(12)
    assert len(set(passwords.values())) == 3

    before = (SeedExample.objects.count(), Segment.objects.count())
    again = io.StringIO()
    call_command("demo_data", stdout=again)
    assert (SeedExample.objects.count(), Segment.objects.count()) == before
    assert again.getvalue().count("(unchanged; `python manage.py reset_demo_passwords` sets new ones)") == 3
    assert all(User.objects.get(username=u).check_password(p) for u, p in passwords.items())


def test_reset_demo_passwords_sets_and_prints_new_ones():
    annotation_services.user_create_with_role(username="admin", password="backforth-admin", role="admin")
    first = annotation_services.demo_users_ensure()
    # The admin still held the password published by earlier releases: it gets a random one too.
    assert {username: len(password) for username, password in first.items()} == {
        "admin": 16,
        "curator": 16,
        "annotator": 16,
    }
    out = io.StringIO()
    call_command("reset_demo_passwords", stdout=out)
    new = printed_passwords(out.getvalue())
    assert set(new) == {"admin", "curator", "annotator"}, out.getvalue()
    User = get_user_model()
    for username, password in new.items():
        assert password != first[username]
        assert User.objects.get(username=username).check_password(password)
    assert user_role(User.objects.get(username="curator")) == "curator"


def test_corpus_add_passages_skips_exact_duplicates_after_normalisation():
    corpus = CorpusFactory()
    added, dups = corpus_add_passages(
        corpus=corpus,
        passages=[{"text": "Alpha beta."}, {"text": "alpha   BETA."}, {"text": "Gamma."}, {"text": "   "}],
    )
    assert (added, dups) == (2, 1)
    added, dups = corpus_add_passages(corpus=corpus, passages=[{"text": "Gamma."}, {"text": "Delta."}])
    assert (added, dups) == (1, 1)
    assert corpus.segments.count() == 3
