"""Every list pages: more rows than a page gives two different pages with links that keep the other query
parameters, and a bad or out-of-range ?page= still answers 200."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from generation import views
from generation.models import Corpus, ModelVersion
from tests.factories import CorpusFactory, ModelVersionFactory, RoundFactory, SegmentFactory, UserFactory

pytestmark = pytest.mark.django_db


def _rows(html: str, pattern: str) -> list[str]:
    return re.findall(pattern, html)


def _check_pages(client, url: str, pattern: str, per_page: int, total: int) -> None:
    first = client.get(url).content.decode()
    second = client.get(url, {"page": 2}).content.decode()
    one, two = _rows(first, pattern), _rows(second, pattern)
    assert len(one) == per_page and len(two) == total - per_page
    assert not set(one) & set(two), "page 2 shows other rows than page 1"
    assert "Page 1 of 2" in first and "page=2" in first and "Page 2 of 2" in second
    for bad in ("²", "99999", "-1", "x", ""):
        response = client.get(url, {"page": bad})
        assert response.status_code == 200, bad
    last = client.get(url, {"page": "99999"}).content.decode()
    assert _rows(last, pattern) == two, "an out-of-range page shows the last one"


def test_the_rounds_list_pages(admin_client):
    base, corpus = ModelVersionFactory(), CorpusFactory()
    n = views.ROUNDS_PER_PAGE + 3
    RoundFactory.create_batch(n, base_model=base, corpus=corpus)
    _check_pages(admin_client, reverse("round-list"), r">Round (\d+)</a>", views.ROUNDS_PER_PAGE, n)


def test_the_model_registry_pages(admin_client):
    n = views.MODELS_PER_PAGE + 2
    for i in range(n):
        ModelVersionFactory(name=f"model-{i:03d}")
    assert ModelVersion.objects.count() == n
    _check_pages(admin_client, reverse("model-list"), r"<strong>(model-\d+)</strong>", views.MODELS_PER_PAGE, n)


def test_the_corpus_list_pages(admin_client):
    n = views.CORPORA_PER_PAGE + 4
    for i in range(n):
        Corpus.objects.create(name=f"corpus-{i:03d}")
    _check_pages(admin_client, reverse("corpus-list"), r">(corpus-\d+)</a>", views.CORPORA_PER_PAGE, n)


def test_a_corpus_pages_its_segments(client):
    client.force_login(UserFactory(role="curator"))
    corpus = CorpusFactory()
    n = views.SEGMENTS_PER_PAGE + 5
    SegmentFactory.create_batch(n, corpus=corpus)
    url = reverse("corpus-detail", args=[corpus.pk])
    _check_pages(client, url, r"<td>(Passage number \d+)", views.SEGMENTS_PER_PAGE, n)


def test_page_links_keep_the_other_query_parameters(admin_client):
    for i in range(views.CORPORA_PER_PAGE + 1):
        Corpus.objects.create(name=f"c{i}")
    html = admin_client.get(reverse("corpus-list"), {"sort": "a&b", "page": "1"}).content.decode()
    assert 'href="?sort=a%26b&amp;page=2"' in html


def test_the_home_page_lists_a_bounded_number_of_corpora(client):
    from generation.selectors import HOME_CORPORA

    client.force_login(UserFactory(role="curator"))
    for i in range(HOME_CORPORA + 3):
        Corpus.objects.create(name=f"home-{i:03d}")
    html = client.get(reverse("home")).content.decode()
    assert len(re.findall(r"<strong>home-\d+</strong>", html)) == HOME_CORPORA
    assert f"all {HOME_CORPORA + 3} corpora" in html
