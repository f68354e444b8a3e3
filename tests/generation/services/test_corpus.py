"""Corpus ingestion end to end on real web text and real PostgreSQL: every shared file imports, planted
near-duplicates are removed, every filter reports counts, and a bad file leaves nothing behind."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from generation.handlers import run_job
from generation.models import Corpus, Segment, SegmentBand
from generation.services import corpus as corpus_service
from generation.services.corpus import ingest_files
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_every_shared_web_file_imports_with_drop_counts(shared_data, client):
    files = sorted(p for p in (shared_data / "web").iterdir() if p.is_file() and not p.name.startswith("README"))
    corpus = Corpus.objects.create(name="shared web")
    report = ingest_files(corpus=corpus, paths=files)
    assert (report.documents, report.added) == (1566, 1604)
    assert report.added == Segment.objects.filter(corpus=corpus).count()
    assert all(600 <= len(s.text) <= 3000 for s in corpus.segments.all()[:200])
    assert dict(report.drops) == {
        "too_short": 429,
        "passage:too_short": 86,
        "too_few_sentences": 23,
        "dup_5gram": 20,
        "dup_6gram": 1,
        "dup_7gram": 1,
        "dup_8gram": 1,
        "dup_10gram": 1,
        "dup_para_chars": 1,
        "top_2gram": 1,
        "top_3gram": 5,
        "top_4gram": 4,
        "boilerplate_lines": 13,
        "ellipsis_lines": 7,
        "stop_words": 2,
        "passage:stop_words": 4,
        "no_alpha_words": 2,
        "uppercase_ratio": 1,
        "passage:uppercase_ratio": 1,
        "exact_duplicate": 2,
    }
    assert len(report.examples["too_short"]) == 3, "a few examples of each document drop"
    assert {f.split("/")[-1] for f in report.files} == {p.name for p in files}
    corpus.refresh_from_db()
    assert corpus.stats["imports"][0]["drops"]["too_short"] == report.drops["too_short"]
    assert corpus.segments.filter(url__startswith="http").count() == 1082, "C4, Dolma and WARC urls are kept"
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
    assert dict(report.drops) == {"near_duplicate": 1, "exact_duplicate": 1}  # `near`, then `upper`
    assert corpus.segments.count() == len(base)


def test_dedup_state_is_in_postgresql_across_batches_and_imports(tmp_path, web_passages, monkeypatch):
    """Batches of 2 send every comparison but the first through the database; a second import into the same
    corpus is deduplicated against the first."""
    from generation.corpus.dedup import lsh_params

    monkeypatch.setattr(corpus_service, "BATCH", 2)
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
    assert job.result["documents"] == 6 and corpus.segments.count() == job.result["added"] == 6


def _launch_choices(client) -> list[str]:
    from generation.forms import RoundLaunchForm

    form = client.get(reverse("round-launch")).context["form"]
    assert isinstance(form, RoundLaunchForm)
    return [label for _, label in form.fields["corpus"].choices]


def _bad_gzip(tmp_path):
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write(json.dumps({"id": "1", "text": "x " * 400}) + "\n{not json")
    return bad


def test_a_refused_command_import_leaves_no_corpus_and_the_launch_form_unchanged(tmp_path, shared_data, client):
    from tests.factories import SegmentFactory

    SegmentFactory(corpus__name="ready")
    client.force_login(UserFactory(role="admin"))
    before = _launch_choices(client)
    good = shared_data / "web" / "dclm_cc_text_499.jsonl"
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_corpus", str(good), str(_bad_gzip(tmp_path)), "--corpus", "new one", verbosity=0)
    assert list(Corpus.objects.values_list("name", flat=True)) == ["ready"]
    assert _launch_choices(client) == before == ["ready"]


def test_an_import_that_keeps_no_passage_is_refused_and_leaves_no_corpus(tmp_path):
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(json.dumps({"id": str(i), "text": f"Too short {i}."}) for i in range(3)))
    with pytest.raises(CommandError, match=r"no passage of 3 documents was kept \(too_short 3\).*nothing was imported"):
        call_command("import_corpus", str(short), "--corpus", "empty", verbosity=0)
    assert not Corpus.objects.exists() and not Segment.objects.exists()


def test_an_import_into_an_existing_corpus_that_fails_keeps_the_corpus_as_it_was(tmp_path, shared_data):
    from tests.factories import SegmentFactory

    kept = SegmentFactory(corpus__name="old")
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_corpus", str(_bad_gzip(tmp_path)), "--corpus", "old", verbosity=0)
    assert list(Segment.objects.all()) == [kept] and Corpus.objects.get().stats == {}


def test_a_refused_upload_job_leaves_no_corpus_and_deletes_its_files(
    client, tmp_path, settings, redis_conn, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from generation.models import Job

    settings.DATA_DIR = tmp_path / "data"
    client.force_login(UserFactory(role="admin"))
    before = _launch_choices(client)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("corpus-list"), {"name": "upload", "files": SimpleUploadedFile("bad.jsonl", b'{"id": 1,\n')}
        )
    assert response.status_code == 302
    assert not Corpus.objects.exists(), "the corpus is created by the import, not by the upload"
    job = Job.objects.get(stage="ingest")
    assert job.payload["corpus_name"] == "upload"
    listed = client.get(reverse("corpus-list")).content.decode()
    assert "No corpus yet." in listed and "upload" in listed and "queued" in listed
    assert run_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.permanent and "bad.jsonl, line 1" in job.error and "nothing was imported" in job.error
    assert not Corpus.objects.exists() and not Segment.objects.exists()
    assert _launch_choices(client) == before == []
    assert list((settings.DATA_DIR / "uploads").iterdir()) == [], "the refused files are deleted"
    assert "bad.jsonl, line 1" in client.get(reverse("corpus-list")).content.decode()


def test_an_upload_over_the_limit_is_refused_with_the_limit_named(client, tmp_path, settings, redis_conn):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from generation.models import Job

    settings.DATA_DIR = tmp_path / "data"
    settings.BACKFORTH_MAX_UPLOAD_MB = 0.01  # 10 KiB
    client.force_login(UserFactory(role="admin"))
    big = SimpleUploadedFile("big.jsonl", b"x" * 20_000)
    response = client.post(reverse("corpus-list"), {"name": "big", "files": big})
    assert response.status_code == 400
    assert "The upload is larger than the 0.01 MB limit. Nothing was imported." in response.content.decode()
    assert not Corpus.objects.exists() and not Job.objects.exists()
    assert not (settings.DATA_DIR / "uploads").exists(), "nothing was written"
    small = SimpleUploadedFile("small.jsonl", b"x" * 100)
    assert client.post(reverse("corpus-list"), {"name": "small", "files": small}).status_code == 302
    assert Job.objects.count() == 1


def test_a_corpus_name_too_long_is_refused_with_a_message(client, redis_conn):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(UserFactory(role="admin"))
    response = client.post(reverse("corpus-list"), {"name": "n" * 201, "files": SimpleUploadedFile("a.txt", b"a")})
    assert response.status_code == 400 and "longer than 200 characters" in response.content.decode()


def _html_page(text: str) -> str:
    paragraphs = "".join(f"<p>{para}</p>" for para in text.split("\n") if para.strip())
    return (
        "<html><head><title>Saved</title><script>var tracker = 1;</script></head><body><nav><a href='/'>Home</a>"
        f"</nav><article>{paragraphs}</article><footer>© Example</footer></body></html>"
    )


def test_import_corpus_reads_a_folder_of_saved_pages(tmp_path, web_passages, client):
    texts = [p for p in web_passages if 700 < len(p) < 2500][:3]
    site = tmp_path / "site"
    (site / "blog" / "2024").mkdir(parents=True)
    (site / "index.html").write_text(_html_page(texts[0]), encoding="utf-8")
    (site / "blog" / "post.htm").write_text(_html_page(texts[1]), encoding="utf-8")
    with gzip.open(site / "blog" / "2024" / "old.html.gz", "wt", encoding="utf-8") as f:
        f.write(_html_page(texts[2]))
    (site / "blog" / "empty.html").write_text("<html><body><nav><a href='/'>Home</a></nav></body></html>")
    (site / "blog" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    out = io.StringIO()
    call_command("import_corpus", str(site), "--corpus", "site", "--min-chars", "300", stdout=out, verbosity=0)
    assert out.getvalue().strip().endswith("Skipped while reading: 1 empty, 1 other_files")
    assert out.getvalue().startswith("site: 4 files, 3 documents → ")
    corpus = Corpus.objects.get(name="site")
    segments = corpus.segments.order_by("source_id")
    assert [(s.source_id, s.meta) for s in segments] == [
        ("blog/2024/old.html.gz", {"file": "blog/2024/old.html.gz"}),
        ("blog/post.htm", {"file": "blog/post.htm"}),
        ("index.html", {"file": "index.html"}),
    ]
    assert not any("tracker" in s.text or "© Example" in s.text for s in segments), "script and footer left out"
    (imported,) = corpus.stats["imports"]
    assert (imported["files"], imported["read"]["skipped_empty"], imported["read"]["skipped_other_files"]) == (
        [str(site)],
        1,
        1,
    )
    client.force_login(UserFactory(role="curator"))
    page = client.get(reverse("corpus-detail", args=[corpus.pk])).content.decode()
    assert "(4 files read)" in page and "Skipped while reading: 1 empty, 1 other_files" in page


def test_a_binary_page_in_a_folder_names_the_file_and_imports_nothing(tmp_path, web_passages):
    site = tmp_path / "site"
    (site / "sub").mkdir(parents=True)
    (site / "a.html").write_text(_html_page(web_passages[0]), encoding="utf-8")
    (site / "sub" / "b.html").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(CommandError) as info:
        call_command("import_corpus", str(site), "--corpus", "site", verbosity=0)
    assert str(info.value) == (
        f"{site / 'sub' / 'b.html'}: binary data, not an HTML page (byte 0x00 at offset 8) — nothing was imported"
    )
    assert not Corpus.objects.filter(name="site").exists() and not Segment.objects.exists()


def test_admins_upload_an_html_page(client, redis_conn, web_passages, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from generation.models import Job

    text = next(p for p in web_passages if 700 < len(p) < 2500)
    client.force_login(UserFactory(role="admin"))
    with django_capture_on_commit_callbacks(execute=True):
        upload = SimpleUploadedFile("Saved Page.html", _html_page(text).encode(), content_type="text/html")
        client.post(reverse("corpus-list"), {"name": "pages", "files": upload})
    job = Job.objects.get(stage="ingest")
    assert run_job(job.pk) == "done"
    (segment,) = Corpus.objects.get(name="pages").segments.all()
    assert segment.source_id == "Saved Page.html" and segment.text.startswith(text.split("\n")[0].strip()[:50])
