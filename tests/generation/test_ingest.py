"""Corpus ingestion end to end on real web text and real PostgreSQL: every shared file imports, planted
near-duplicates are removed, every filter reports counts, and a bad file leaves nothing behind."""

from __future__ import annotations

import gzip
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from generation.ingest import ingest_files
from generation.models import Corpus, Segment, SegmentBand
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_every_shared_web_file_imports_with_drop_counts(shared_data, client):
    files = sorted(p for p in (shared_data / "web").iterdir() if p.is_file() and not p.name.startswith("README"))
    corpus = Corpus.objects.create(name="shared web")
    report = ingest_files(corpus=corpus, paths=files)
    assert report.documents > 1500 and report.added > 500
    assert report.added == Segment.objects.filter(corpus=corpus).count()
    assert all(600 <= len(s.text) <= 3000 for s in corpus.segments.all()[:200])
    assert report.drops["too_short"] > 0 and report.examples["too_short"]
    assert {f.split("/")[-1] for f in report.files} == {p.name for p in files}
    corpus.refresh_from_db()
    assert corpus.stats["imports"][0]["drops"]["too_short"] == report.drops["too_short"]
    assert corpus.segments.filter(url__startswith="http").exists(), "C4 and WARC urls are kept"
    client.force_login(UserFactory(role="curator"))
    page = client.get(reverse("corpus-detail", args=[corpus.pk])).content.decode()
    assert "too_short" in page and f"<strong>{report.added}</strong> new segments" in page


def test_planted_near_duplicates_are_removed(tmp_path, web_passages):
    base = [p for p in web_passages if 700 < len(p) < 2500][:5]
    near = base[0].replace(" the ", " a ", 2) + " Thanks."
    upper = "  " + base[1].lower().replace(" ", "  ")
    path = tmp_path / "planted.jsonl"
    path.write_text("\n".join(json.dumps({"id": str(i), "text": t}) for i, t in enumerate([*base, near, upper])))
    corpus = Corpus.objects.create(name="planted")
    report = ingest_files(corpus=corpus, paths=[path], min_chars=300)
    assert report.drops["near_duplicate"] + report.drops["exact_duplicate"] == 2, report.drops
    assert corpus.segments.count() == len(base)


def test_dedup_state_is_in_postgresql_across_batches_and_imports(tmp_path, web_passages, monkeypatch):
    """Batches of 2 send every comparison but the first through the database; a second import into the same
    corpus is deduplicated against the first."""
    from generation import ingest
    from generation.corpus.dedup import lsh_params

    monkeypatch.setattr(ingest, "BATCH", 2)
    *base, fresh = [p for p in web_passages if 700 < len(p) < 2500][:5]
    first = tmp_path / "first.jsonl"
    first.write_text("\n".join(json.dumps({"id": str(i), "text": t}) for i, t in enumerate(base)))
    corpus = Corpus.objects.create(name="two imports")
    assert ingest_files(corpus=corpus, paths=[first], min_chars=300).added == 4
    bands = lsh_params().bands
    assert SegmentBand.objects.filter(corpus=corpus).count() == 4 * bands
    assert all(len(bytes(s.minhash)) == 512 for s in corpus.segments.all())

    later = [
        base[3] + " Thanks for reading.",  # near duplicate of the first import
        "  " + base[0].lower().replace(" ", "  "),  # exact duplicate of the first import (normalised)
        fresh,
        base[1].replace(" the ", " a ", 2),  # near duplicate, next batch
    ]
    second = tmp_path / "second.jsonl"
    second.write_text("\n".join(json.dumps({"id": f"b{i}", "text": t}) for i, t in enumerate(later)))
    report = ingest_files(corpus=corpus, paths=[second], min_chars=300)
    assert report.drops["exact_duplicate"] == 1 and report.drops["near_duplicate"] == 2, report.drops
    assert report.added == 1 and corpus.segments.filter(text=fresh).exists()
    assert SegmentBand.objects.filter(corpus=corpus).count() == 5 * bands


def test_a_bad_file_names_file_and_line_and_imports_nothing(tmp_path, shared_data):
    good = shared_data / "web" / "dclm_cc_text_499.jsonl"
    bad = tmp_path / "bad.jsonl.gz"
    lines = [json.dumps({"id": "1", "text": "x " * 400}), "{not json", json.dumps({"id": "3"})]
    with gzip.open(bad, "wt") as f:
        f.write("\n".join(lines))
    with pytest.raises(CommandError, match=r"bad.jsonl.gz, line 2: .*nothing was imported"):
        call_command("import_corpus", str(good), str(bad), "--corpus", "mixed", verbosity=0)
    assert not Segment.objects.exists(), "the good file's passages were rolled back too"
    assert not SegmentBand.objects.exists(), "and their band keys"


def test_admins_upload_files_and_a_worker_job_imports_them(
    client, redis_conn, web_passages, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from generation.jobs import run_job
    from generation.models import Job

    body = "\n".join(json.dumps({"id": str(i), "text": t}) for i, t in enumerate(web_passages[:6])).encode()
    client.force_login(UserFactory(role="curator"))
    refused = client.post(reverse("corpus-list"), {"name": "up", "files": SimpleUploadedFile("a.jsonl", body)})
    assert refused.status_code == 403
    client.force_login(UserFactory(role="admin"))
    page = client.get(reverse("corpus-list")).content.decode()
    assert "<title>Corpora · Backforth</title>" in page and page.count('name="files"') == 1, "one form, in the body"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("corpus-list"), {"name": "up", "files": SimpleUploadedFile("a.jsonl", body)})
    job = Job.objects.get(stage="ingest")
    assert job.queue == "default" and job.payload["paths"][0].endswith("a.jsonl")
    assert run_job(job.pk) == "done"
    job.refresh_from_db()
    corpus = Corpus.objects.get(name="up")
    assert job.result["documents"] == 6 and corpus.segments.count() == job.result["added"] > 0
