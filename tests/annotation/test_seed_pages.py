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
        services.seed_import(user=None, name="bad.jsonl", data=bad.encode())
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


def test_the_import_form_reads_a_csv_with_a_column_mapping(client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotation.models import AuditEvent

    client.force_login(UserFactory(role=CURATOR))
    page = client.get(reverse("seed-list")).content.decode()
    assert 'name="map_instruction"' in page and 'name="all_turns"' in page and "<option>csv</option>" in page
    body = "Frage,Antwort,Kontext\nWie spät ist es?,Halb zehn.,in Berlin\nUnd morgen?,Auch.,\n".encode()
    form = {"map_instruction": "Frage", "map_response": "Antwort", "map_input": "Kontext", "source": "web"}
    response = client.post(
        reverse("seed-import"), {"file": SimpleUploadedFile("fragen.csv", body), **form}, follow=True
    )
    assert "Imported 2 examples from fragen.csv (csv)." in response.content.decode()
    assert [(e.instruction, e.response, e.source, e.provenance) for e in SeedExample.objects.order_by("id")] == [
        (
            "Wie spät ist es?\n\nin Berlin",
            "Halb zehn.",
            "web",
            {"kind": "import", "file": "fragen.csv", "format": "csv", "row": 2},
        ),
        ("Und morgen?", "Auch.", "web", {"kind": "import", "file": "fragen.csv", "format": "csv", "row": 3}),
    ]
    assert AuditEvent.objects.get(action="seed.import").after == {"file": "fragen.csv", "format": "csv", "count": 2}

    bad = b"Frage,Antwort\nQ,A\nQ2,\n"
    response = client.post(
        reverse("seed-import"), {"file": SimpleUploadedFile("bad.csv", bad), **form, "map_input": ""}, follow=True
    )
    html = response.content.decode()
    assert "bad.csv: nothing was imported. row 3: column &#x27;Antwort&#x27; is empty" in html
    assert "the header is row 1" in html and SeedExample.objects.count() == 2

    missing = client.post(
        reverse("seed-import"), {"file": SimpleUploadedFile("m.csv", bad), "map_instruction": "Question"}, follow=True
    )
    assert "no column &#x27;Question&#x27; for instruction" in missing.content.decode()


def test_the_import_form_takes_every_turn_of_a_conversation_when_asked(client):
    import json

    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(UserFactory(role=CURATOR))
    body = json.dumps({"conversations": ["Q1", "A1", "Q2", "A2"]}).encode() + b"\n"
    client.post(reverse("seed-import"), {"file": SimpleUploadedFile("lima.jsonl", body)})
    assert list(SeedExample.objects.values_list("instruction", flat=True)) == ["Q1"]
    SeedExample.objects.all().delete()
    client.post(reverse("seed-import"), {"file": SimpleUploadedFile("lima.jsonl", body), "all_turns": "1"})
    assert list(SeedExample.objects.order_by("id").values_list("instruction", "response")) == [
        ("Q1", "A1"),
        ("Q2", "A2"),
    ]
    refused = client.post(
        reverse("seed-import"), {"file": SimpleUploadedFile("lima.jsonl", body), "format": "xlsx"}, follow=True
    )
    assert "lima.jsonl: nothing was imported. format: Select a valid choice." in refused.content.decode()
