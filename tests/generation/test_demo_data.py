import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotation.models import SeedExample
from annotation.roles import user_role
from generation import services
from generation.models import Corpus, Segment
from tests.factories import CorpusFactory

pytestmark = pytest.mark.django_db


def test_demo_data_meets_the_brief_and_is_idempotent():
    call_command("demo_data", stdout=io.StringIO())
    seeds = SeedExample.objects.filter(provenance__kind="demo")
    assert seeds.count() >= 30
    assert seeds.filter(source="safety").count() >= 5
    corpus = Corpus.objects.get(name="Python reference (demo)")
    assert corpus.segments.count() >= 100
    # Through the real ingestion pipeline: its passage bounds, its filters (recorded), no ASCII-table rules.
    assert all(600 <= s.char_count <= 3000 for s in corpus.segments.all())
    [report] = corpus.stats["imports"]
    assert report["documents"] > 50 and report["added"] == corpus.segments.count() and report["drops"]
    assert not corpus.segments.filter(text__contains="+---").exists()
    users = {u.username: user_role(u) for u in get_user_model().objects.all()}
    assert users == {"admin": "admin", "curator": "curator", "annotator": "annotator"}

    before = (SeedExample.objects.count(), Segment.objects.count())
    call_command("demo_data", stdout=io.StringIO())
    assert (SeedExample.objects.count(), Segment.objects.count()) == before


def test_corpus_add_passages_skips_exact_duplicates_after_normalisation():
    corpus = CorpusFactory()
    added, dups = services.corpus_add_passages(
        corpus=corpus,
        passages=[{"text": "Alpha beta."}, {"text": "alpha   BETA."}, {"text": "Gamma."}, {"text": "   "}],
    )
    assert (added, dups) == (2, 1)
    added, dups = services.corpus_add_passages(corpus=corpus, passages=[{"text": "Gamma."}, {"text": "Delta."}])
    assert (added, dups) == (1, 1)
    assert corpus.segments.count() == 3
