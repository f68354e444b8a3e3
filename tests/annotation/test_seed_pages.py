import pytest
from django.urls import reverse

from annotation import services
from annotation.models import SeedExample
from annotation.roles import CURATOR
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
