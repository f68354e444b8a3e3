import pytest
from django.urls import reverse

from annotation import services
from annotation.models import SeedExample
from app.roles import CURATOR
from tests.factories import SeedExampleFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_seed_import_is_all_or_nothing_and_names_the_bad_row():
    rows = [
        {"instruction": "Q1", "response": "A1"},
        {"instruction": "Q2", "response": "A2", "source": "safety"},
        {"instruction": "Q3", "response": "   "},
    ]
    with pytest.raises(ValueError, match="row 3: instruction and response must both be non-empty"):
        services.seed_examples_create(rows=rows)
    assert SeedExample.objects.count() == 0
    with pytest.raises(ValueError, match="row 1: source must be one of"):
        services.seed_examples_create(rows=[{"instruction": "Q", "response": "A", "source": "spam"}])
    created = services.seed_examples_create(rows=rows[:2])
    assert [e.source for e in created] == ["seed", "safety"]


def test_seed_list_filters_and_answers_htmx_with_the_table_only(client):
    client.force_login(UserFactory(role=CURATOR))
    SeedExampleFactory(instruction="How do tides work?")
    SeedExampleFactory(instruction="Refuse this", source="safety")
    page = client.get(reverse("seed-list"), {"q": "tides"})
    assert b"<html" in page.content and b"How do tides work?" in page.content and b"Refuse this" not in page.content
    partial = client.get(reverse("seed-list"), {"source": "safety"}, headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert "<html" not in body and 'id="seed-table"' in body
    assert "Refuse this" in body and "tides" not in body


def test_user_create_with_role_resets_password_and_role():
    user = services.user_create_with_role(username="ann", password="pw-one-two-three", role="annotator")
    again = services.user_create_with_role(username="ann", password="pw-four-five", role="curator")
    assert again.pk == user.pk
    assert again.check_password("pw-four-five")
    assert list(again.groups.values_list("name", flat=True)) == ["curator"]
    with pytest.raises(ValueError, match="unknown role"):
        services.user_create_with_role(username="x", password="y", role="boss")


def test_a_refused_seed_import_writes_nothing_at_all():
    from annotation.models import AuditEvent
    from generation.pipeline import formats

    bad = '{"instruction": "Q1", "response": "A1"}\n{"instruction": "Q2"}\n'
    with pytest.raises(formats.FormatError) as info:
        services.seed_import(user=None, name="bad.jsonl", text=bad)
    assert info.value.problems == [(2, "'response' is missing")]
    assert SeedExample.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_a_seed_file_over_the_limit_is_refused_with_the_limit_named(client, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.BACKFORTH_MAX_SEED_UPLOAD_MB = 0.001  # about 1 KB
    client.force_login(UserFactory(role=CURATOR))
    line = b'{"instruction": "Q", "response": "A"}\n'
    response = client.post(reverse("seed-import"), {"file": SimpleUploadedFile("big.jsonl", line * 100)}, follow=True)
    assert response.status_code == 200
    assert "big.jsonl is 3.7 KB, over the 0.001 MB limit. Nothing was imported." in response.content.decode()
    assert SeedExample.objects.count() == 0
    ok = client.post(reverse("seed-import"), {"file": SimpleUploadedFile("ok.jsonl", line * 2)}, follow=True)
    assert "Imported 2 examples" in ok.content.decode() and SeedExample.objects.count() == 2
