"""Streaming corpus readers: real web samples, malformed files, memory bounds. Pure (no database)."""

import gzip
import json
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from generation.corpus.readers import Document, ReadError, ReadStats, _common, detect_kind, jsonl, read_documents

WEB = Path("/work/shared/data/web")
C4 = WEB / "c4_en_sample_1000.json.gz"
WARCS = [WEB / "dolma_tests_warc_sample-0000.warc.gz", WEB / "dolma_tests_warc_sample-0001.warc.gz"]
MB = 1 << 20
GZIP_EOF = "(Compressed file ended before the end-of-stream marker was reached)"  # Python's gzip EOFError


def real(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present (real web samples live in {WEB})")
    return path


def needs_warc_libs():
    pytest.importorskip("fastwarc")
    pytest.importorskip("resiliparse")


def write_jsonl(path: Path, lines: list[str | bytes]) -> Path:
    data = b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def read_all(path, **kwargs) -> list[Document]:
    return list(read_documents(path, **kwargs))


def read_until_error(path, **kwargs) -> tuple[list[Document], ReadError]:
    docs = []
    with pytest.raises(ReadError) as info:
        for doc in read_documents(path, **kwargs):
            docs.append(doc)
    return docs, info.value


# --------------------------------------------------------------------------------------------- real samples


@pytest.mark.parametrize(
    ("name", "count", "id_prefix", "has_url"),
    [
        ("c4_en_sample_1000.json.gz", 1000, "c4_en_sample_1000.json.gz:", True),  # C4 has no id: file:line
        ("dclm_cc_text_499.jsonl", 499, "dclm-", False),
        ("dolma_provided_documents_000.json.gz", 10, "http", True),  # url from metadata.url
        ("dolma_tests_cc_en_head-0091.jsonl", 10, "http", True),
        ("dolma_tests_cc_en_head-0174.jsonl", 10, "http", True),
    ],
)
def test_real_json_lines_files_read_completely(name, count, id_prefix, has_url):
    path = real(WEB / name)
    assert detect_kind(path) == "jsonl"
    stats = ReadStats()
    docs = read_all(path, stats=stats)
    assert len(docs) == count == stats.documents
    data = path.read_bytes()
    assert stats.files == 1 and stats.skipped_empty == 0
    assert stats.bytes == len(gzip.decompress(data) if name.endswith(".gz") else data), "all of it, decompressed"
    assert all(isinstance(d, Document) and d.text.strip() for d in docs)
    assert all(d.source_id.startswith(id_prefix) for d in docs)
    assert len({d.source_id for d in docs}) == count
    assert all(d.url.startswith("http") for d in docs) if has_url else all(d.url == "" for d in docs)
    assert all("text" not in d.meta for d in docs)


def test_real_c4_and_dolma_metadata_is_kept():
    c4 = next(read_documents(real(C4)))
    assert c4.source_id == "c4_en_sample_1000.json.gz:1"
    assert c4.url == "https://www.kentlive.news/news/sevenoaks-mum-who-died-after-2582402"
    assert c4.meta == {"date": "2019-04-21T18:54:04Z"}
    dolma = next(read_documents(real(WEB / "dolma_tests_cc_en_head-0091.jsonl")))
    assert dolma.meta["source"] == "common-crawl"
    assert dolma.meta["metadata"]["language"] == "en"
    assert dolma.url == dolma.meta["metadata"]["url"]


@pytest.mark.parametrize(("index", "count", "first_url", "phrase"), [
    (0, 22, "https://www.semanticscholar.org/research/research-team", "Semantic Scholar Research Team"),
    (1, 15, "https://creativecommons.org/", "Creative Commons"),
])  # fmt: skip
def test_real_warc_yields_extracted_main_text(index, count, first_url, phrase):
    needs_warc_libs()
    path = real(WARCS[index])
    assert detect_kind(path) == "warc"
    stats = ReadStats()
    docs = read_all(path, stats=stats)
    assert len(docs) == count == stats.documents
    assert stats.skipped_non_html == 2  # the two wget log resource records (text/plain)
    assert docs[0].url == first_url
    assert phrase in docs[0].text
    for doc in docs:
        assert doc.url.startswith("https://")
        assert doc.source_id.startswith("urn:uuid:")
        assert doc.meta["http_status"] == 200 and doc.meta["content_type"] == "text/html"
        assert len(doc.text) > 50
        lowered = doc.text.lower()
        assert not any(tag in lowered for tag in ("<html", "<div", "<script", "<p>", "</a>", "<meta"))
    assert len({d.source_id for d in docs}) == count


def test_real_chunked_warc_payload_is_dechunked():
    needs_warc_libs()
    docs = {d.url: d for d in read_documents(real(WARCS[0]))}
    weld = docs["https://www.cs.washington.edu/people/faculty/weld"].text  # stored with Transfer-Encoding: chunked
    assert "Artificial" in weld and "\r\n" not in weld


def test_stats_accumulate_across_files():
    stats = ReadStats()
    for name in ("dolma_tests_cc_en_head-0091.jsonl", "dolma_tests_cc_en_head-0174.jsonl"):
        for _ in read_documents(real(WEB / name), stats=stats):
            pass
    assert stats.files == 2 and stats.documents == 20
    assert stats.bytes == sum(
        (WEB / n).stat().st_size for n in ("dolma_tests_cc_en_head-0091.jsonl", "dolma_tests_cc_en_head-0174.jsonl")
    )


def test_c4_is_streamed_document_by_document():
    path = real(C4)
    decompressed = len(gzip.decompress(path.read_bytes()))
    tracemalloc.start()
    try:
        count = 0
        longest = 0
        for doc in read_documents(path):
            count += 1
            longest = max(longest, len(doc.text))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 1000
    assert peak < decompressed / 4, (peak, decompressed)


# --------------------------------------------------------------------------------------------- kinds


@pytest.mark.parametrize(("name", "kind"), [
    ("a.jsonl", "jsonl"), ("a.jsonl.gz", "jsonl"), ("A.JSONL.GZ", "jsonl"), ("a.ndjson", "jsonl"),
    ("a.txt", "text"), ("a.txt.gz", "text"), ("a.parquet", "parquet"), ("a.warc", "warc"), ("a.warc.gz", "warc"),
    ("a.html", "html"), ("a.HTM", "html"), ("a.html.gz", "html"), ("a.htm.gz", "html"),
])  # fmt: skip
def test_detect_kind_by_suffix(tmp_path, name, kind):
    assert detect_kind(tmp_path / name) == kind


@pytest.mark.parametrize("name", ["a.csv", "a.gz", "README", "a.parquet.gz", "a.xhtml", "a.png"])
def test_unknown_kind_is_a_read_error(tmp_path, name):
    with pytest.raises(ReadError, match="unknown file type"):
        detect_kind(tmp_path / name)
    with pytest.raises(ReadError, match="unknown file type"):
        read_documents(tmp_path / name)  # refused at the call, before iterating


def test_json_suffix_needs_json_lines_content(tmp_path):
    lines = write_jsonl(tmp_path / "lines.json", ['{"id": "a", "text": "one"}', '{"id": "b", "text": "two"}'])
    assert detect_kind(lines) == "jsonl"
    assert [d.text for d in read_documents(lines)] == ["one", "two"]
    gz = write_jsonl(tmp_path / "lines.json.gz", ['{"text": "one"}'])
    assert detect_kind(gz) == "jsonl"
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps({"id": "a", "text": "one"}, indent=2))
    with pytest.raises(ReadError, match="not JSON lines"):
        detect_kind(pretty)
    array = tmp_path / "array.json"
    array.write_text(json.dumps([{"text": "one"}]))
    with pytest.raises(ReadError, match="JSON array"):
        read_documents(array)


def test_read_error_formats_path_and_line():
    assert str(ReadError("/x/a.jsonl", 3, "invalid JSON")) == "/x/a.jsonl, line 3: invalid JSON"
    assert str(ReadError("/x/a.jsonl", None, "no documents")) == "/x/a.jsonl: no documents"
    err = ReadError("/x/a.jsonl", 3, "bad")
    assert isinstance(err, ValueError) and (err.path, err.line, err.reason) == ("/x/a.jsonl", 3, "bad")


def test_missing_file_is_a_read_error(tmp_path):
    with pytest.raises(ReadError, match="cannot open"):
        read_documents(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------------------------- JSON lines errors


def test_invalid_json_names_line_3(tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl", ['{"text": "one"}', '{"text": "two"}', '{"text": "three",', '{"text": "x"}']
    )
    docs, err = read_until_error(path)
    assert [d.text for d in docs] == ["one", "two"]
    assert err.line == 3 and err.path == str(path) and "invalid JSON" in err.reason
    assert str(err).startswith(f"{path}, line 3: invalid JSON")


def test_missing_or_non_string_text_names_line_2(tmp_path):
    missing = write_jsonl(tmp_path / "missing.jsonl", ['{"text": "one"}', '{"id": "x", "body": "two"}'])
    _docs, err = read_until_error(missing)
    assert err.line == 2 and "missing 'text' field" in err.reason and "body" in err.reason
    null = write_jsonl(tmp_path / "null.jsonl.gz", ['{"text": "one"}', '{"text": null}'])
    _docs, err = read_until_error(null)
    assert err.line == 2 and "not a string" in err.reason
    not_object = write_jsonl(tmp_path / "list.jsonl", ['{"text": "one"}', '["text"]'])
    _docs, err = read_until_error(not_object)
    assert err.line == 2 and "JSON object" in err.reason


def test_custom_fields_blank_lines_and_empty_texts(tmp_path):
    path = write_jsonl(
        tmp_path / "custom.jsonl",
        ['{"doc": 7, "content": "hello", "meta": {"url": "https://e.x/"}}', "", '{"doc": 8, "content": "  "}'],
    )
    stats = ReadStats()
    [doc] = read_all(path, text_field="content", id_field="doc", stats=stats)
    assert (doc.text, doc.source_id, doc.url) == ("hello", "7", "https://e.x/")
    assert stats.skipped_empty == 1


def test_truncated_gzip_names_the_last_good_line(tmp_path):
    data = real(C4).read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    docs, err = read_until_error(cut)
    assert len(docs) == 495  # the whole lines in the first half of the file
    assert err.reason == f"truncated or corrupt gzip after line 495 {GZIP_EOF}"
    assert err.line == 496


def test_truncated_gzip_synthetic(tmp_path):
    data = gzip.compress(b"".join(json.dumps({"text": f"document {i} " * 20}).encode() + b"\n" for i in range(500)))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    docs, err = read_until_error(cut)
    assert len(docs) == 236 and err.reason == f"truncated or corrupt gzip after line 236 {GZIP_EOF}"


def test_gzip_name_without_gzip_content(tmp_path):
    path = tmp_path / "plain.jsonl.gz"
    path.write_bytes(b'{"text": "one"}\n')
    _docs, err = read_until_error(path)
    assert "not gzip" in err.reason


def test_binary_junk_names_its_line(tmp_path):
    junk = b"\xff\xfe\x00\x80\xc3\x28" * 500
    path = write_jsonl(tmp_path / "junk.jsonl", ['{"text": "fine"}', junk])
    docs, err = read_until_error(path)
    assert len(docs) == 1 and err.line == 2 and "UTF-8" in err.reason
    only_junk = tmp_path / "only.jsonl.gz"
    only_junk.write_bytes(gzip.compress(bytes(range(255, -1, -1)) * 40))
    _docs, err = read_until_error(only_junk)
    assert err.line == 1 and "UTF-8" in err.reason


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.jsonl.gz", "empty.txt", "empty.warc", "empty.parquet"])
def test_empty_file_has_no_documents(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(ReadError, match="no documents"):
        read_documents(path)


def test_only_blank_lines_or_empty_texts_have_no_documents(tmp_path):
    blank = write_jsonl(tmp_path / "blank.jsonl.gz", ["", "   "])
    _docs, err = read_until_error(blank)
    assert err.reason == "no documents"
    empty_texts = write_jsonl(tmp_path / "texts.jsonl", ['{"text": ""}', '{"text": " "}'])
    _docs, err = read_until_error(empty_texts)
    assert err.reason == "no documents (skipped: 2 empty)"


def test_line_limit_boundary(tmp_path):
    line = json.dumps({"text": "x" * 100})
    path = write_jsonl(tmp_path / "edge.jsonl", [line, line + " " * 5])
    docs, err = read_until_error(path, max_line_bytes=len(line))
    assert len(docs) == 1 and err.line == 2 and "max_line_bytes" in err.reason
    assert len(read_all(path, max_line_bytes=len(line) + 5)) == 2


@pytest.mark.parametrize("chunk", [1, 2, 7, 64])
def test_lines_read_in_small_chunks_are_reassembled_exactly(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(_common, "LINE_CHUNK", chunk)  # read_line looks it up there
    texts = ["", "a", "ab" * 40, "x" * 63, "y" * 64, "z" * 65, "café ✓ " * 30]
    path = write_jsonl(tmp_path / "chunks.jsonl", [json.dumps({"id": str(i), "text": t}) for i, t in enumerate(texts)])
    assert [d.text for d in read_documents(path)] == [t for t in texts if t]
    longest = max(len(json.dumps({"id": "9", "text": t}).encode()) for t in texts)
    docs, err = read_until_error(path, max_line_bytes=longest - 1)
    assert err.line == 7 and len(docs) == 5


def test_early_stop_closes_the_file(tmp_path, monkeypatch):
    opened = []
    real_open = jsonl.open_binary
    monkeypatch.setattr(jsonl, "open_binary", lambda path: opened.append(real_open(path)) or opened[-1])
    path = write_jsonl(tmp_path / "many.jsonl.gz", [json.dumps({"text": f"doc {i}"}) for i in range(100)])
    docs = read_documents(path)
    assert next(docs).text == "doc 0"
    assert not opened[-1].closed
    docs.close()
    assert opened[-1].closed


def _write_huge_line(path: Path, size: int, *, before: list[str] = ()) -> None:
    chunk = b"a" * MB
    with open(path, "wb") as f:
        for line in before:
            f.write(line.encode() + b"\n")
        f.write(b'{"text": "')
        for _ in range(size // MB):
            f.write(chunk)
        f.write(b'"}\n{"text": "after"}\n')


def test_50mb_single_line_is_refused_without_materialising_it(tmp_path):
    path = tmp_path / "huge.jsonl"
    _write_huge_line(path, 50 * MB, before=['{"text": "small"}'])
    tracemalloc.start()
    started = time.perf_counter()
    try:
        docs, err = read_until_error(path)  # default max_line_bytes: 10 MB
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert [d.text for d in docs] == ["small"]
    assert err.line == 2 and "longer than max_line_bytes" in err.reason
    assert peak < 20 * MB, peak
    assert elapsed < 10, elapsed


def test_50mb_gzipped_single_line_is_refused_too(tmp_path):
    path = tmp_path / "huge.jsonl.gz"
    chunk = b"a" * MB
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b'{"text": "')
        for _ in range(50):
            f.write(chunk)
        f.write(b'"}\n')
    tracemalloc.start()
    try:
        _docs, err = read_until_error(path, max_line_bytes=2 * MB)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.line == 1 and "max_line_bytes" in err.reason
    assert peak < 8 * MB, peak


# --------------------------------------------------------------------------------------------- plain text


def test_text_file_is_one_document(tmp_path):
    plain = tmp_path / "notes.txt"
    plain.write_text("\ufeffFirst paragraph.\n\nSecond paragraph.\n\n")
    [doc] = read_all(plain)
    assert doc.text == "First paragraph.\n\nSecond paragraph."
    assert (doc.source_id, doc.url) == ("notes.txt", "")
    packed = tmp_path / "notes.txt.gz"
    packed.write_bytes(gzip.compress(b"Zipped text.\n"))
    assert [d.text for d in read_documents(packed)] == ["Zipped text."]


def test_text_file_errors(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"line one\nline two\n\xff\xfe junk\n")
    _docs, err = read_until_error(junk)
    assert err.line == 3 and "UTF-8" in err.reason
    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * 1000)
    _docs, err = read_until_error(big, max_line_bytes=1000)
    assert "larger than max_line_bytes" in err.reason
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n")
    _docs, err = read_until_error(blank)
    assert err.reason == "no documents (skipped: 1 empty)"


# --------------------------------------------------------------------------------------------- Parquet


def test_parquet_is_read_in_batches(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = 1000
    table = pa.table(
        {
            "id": [f"doc-{i}" for i in range(rows)],
            "text": [f"text number {i}" if i != 5 else " " for i in range(rows)],
            "url": [f"https://e.x/{i}" for i in range(rows)],
            "lang": ["en"] * rows,
        }
    )
    path = tmp_path / "good.parquet"
    pq.write_table(table, path, row_group_size=300)
    assert detect_kind(path) == "parquet"
    stats = ReadStats()
    docs = read_all(path, stats=stats)
    assert len(docs) == rows - 1 and stats.skipped_empty == 1
    assert (docs[0].text, docs[0].source_id, docs[0].url, docs[0].meta) == (
        "text number 0",
        "doc-0",
        "https://e.x/0",
        {"lang": "en"},
    )
    assert docs[-1].source_id == "doc-999"


def test_parquet_errors(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    no_text = tmp_path / "no_text.parquet"
    pq.write_table(pa.table({"id": ["a"], "body": ["hello"]}), no_text)
    _docs, err = read_until_error(no_text)
    assert "no 'text' column" in err.reason and "body" in err.reason
    nulls = tmp_path / "nulls.parquet"
    pq.write_table(pa.table({"text": ["fine", None]}), nulls)
    docs, err = read_until_error(nulls)
    assert len(docs) == 1 and "row 2" in err.reason
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(b"not parquet at all" * 10)
    _docs, err = read_until_error(fake)
    assert "not a readable Parquet file" in err.reason


# --------------------------------------------------------------------------------------------- WARC


def _warc_record(
    uri: str, http: bytes | None, *, warc_type: str = "response", content_type: str = "text/plain"
) -> bytes:
    block = http if http is not None else b""
    headers = [
        "WARC/1.0",
        f"WARC-Type: {warc_type}",
        f"WARC-Record-ID: <urn:uuid:{zlib.crc32(uri.encode()):08x}-0000-0000-0000-000000000000>",
        "WARC-Date: 2024-04-25T09:24:44Z",
        f"WARC-Target-URI: {uri}",
        f"Content-Type: {'application/http; msgtype=response' if warc_type == 'response' else content_type}",
        f"Content-Length: {len(block)}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + block + b"\r\n\r\n"


def _http(body: bytes, *, status: str = "200 OK", content_type: str = "text/html; charset=utf-8", extra=()) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", *extra, f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


ARTICLE = (
    b"<html><head><title>T</title><script>var x = 1;</script></head><body><nav><a href='/'>Home</a></nav>"
    b"<article><h1>Readers stream</h1><p>The corpus reader extracts the main text of this page and drops the "
    b"navigation and scripts around it.</p><p>A second paragraph with caf\xc3\xa9 in it.</p></article></body></html>"
)


def test_synthetic_warc_counts_what_it_skips(tmp_path):
    needs_warc_libs()
    not_found = b"<html><body><p>Not found</p></body></html>"
    latin1 = "<p>Un café crème, s'il vous plaît, pour le déjeuner.</p>".encode("latin-1")
    resource = b"<html><body><p>A resource record holding html text.</p></body></html>"
    records = [
        _warc_record("<http://e.x/article>", _http(ARTICLE)),
        _warc_record("http://e.x/gz", _http(gzip.compress(ARTICLE), extra=["Content-Encoding: gzip"])),
        _warc_record("http://e.x/image.png", _http(b"\x89PNG....", content_type="image/png")),
        _warc_record("http://e.x/missing", _http(not_found, status="404 Not Found")),
        _warc_record("http://e.x/blank", _http(b"<html><body></body></html>")),
        _warc_record("http://e.x/latin1", _http(latin1, content_type="text/html; charset=iso-8859-1")),
        _warc_record("urn:resource", resource, warc_type="resource", content_type="text/html"),
        _warc_record("http://e.x/request", b"GET / HTTP/1.1\r\n\r\n", warc_type="request"),
    ]
    path = tmp_path / "synthetic.warc.gz"
    path.write_bytes(b"".join(gzip.compress(r) for r in records))  # one gzip member per record, as in CC
    stats = ReadStats()
    docs = read_all(path, stats=stats)
    by_url = {d.url: d for d in docs}
    assert list(by_url) == ["http://e.x/article", "http://e.x/gz", "http://e.x/latin1", "urn:resource"]
    article = by_url["http://e.x/article"].text
    assert "Readers stream" in article and "café" in article and "var x" not in article and "<" not in article
    assert by_url["http://e.x/gz"].text == article
    assert "café crème" in by_url["http://e.x/latin1"].text
    assert by_url["http://e.x/article"].source_id.startswith("urn:uuid:")
    assert (stats.skipped_non_html, stats.skipped_http_status, stats.skipped_empty) == (1, 1, 1)
    assert stats.documents == 4


def test_warc_with_nothing_usable_has_no_documents(tmp_path):
    needs_warc_libs()
    path = tmp_path / "images.warc"
    path.write_bytes(_warc_record("http://e.x/a.png", _http(b"\x89PNG", content_type="image/png")))
    _docs, err = read_until_error(path)
    assert err.reason == "no documents (skipped: 1 non_html)"


def test_unreadable_warc(tmp_path):
    needs_warc_libs()
    junk = tmp_path / "junk.warc"
    junk.write_bytes(b'{"text": "this is not a WARC file"}\n' * 10)
    _docs, err = read_until_error(junk)
    assert "unreadable WARC" in err.reason
    junk_gz = tmp_path / "junk.warc.gz"
    junk_gz.write_bytes(gzip.compress(bytes(range(256)) * 20))
    _docs, err = read_until_error(junk_gz)
    assert "unreadable WARC" in err.reason


def test_truncated_warc_gz_is_an_error(tmp_path):
    needs_warc_libs()
    data = real(WARCS[0]).read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) // 2])
    docs, err = read_until_error(cut)
    assert len(docs) == 11  # of its 22
    assert err.reason == f"truncated or corrupt gzip in WARC record 12 {GZIP_EOF}"


def test_truncated_plain_warc_is_an_error(tmp_path):
    needs_warc_libs()
    record = _warc_record("http://e.x/article", _http(ARTICLE))
    cut = tmp_path / "cut.warc"
    cut.write_bytes(record + record[: len(record) - 100])
    docs, err = read_until_error(cut)
    assert len(docs) == 1 and "truncated WARC record 2" in err.reason
