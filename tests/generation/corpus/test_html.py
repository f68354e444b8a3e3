"""Saved HTML pages and directories: main text extracted like the WARC reader's, plain and gzipped, a folder read
recursively in sorted order, pages without text skipped and counted, binary and undecodable files refused."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from generation.corpus.readers import ReadError, ReadStats, corpus_files, read_documents
from generation.corpus.readers._html import main_text

pytest.importorskip("resiliparse")


def page(title: str, *paragraphs: str, head: str = "", charset: str = "utf-8") -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<html><head><meta charset="{charset}"><title>{title}</title>{head}<script>var tracker = 1;</script>'
        f"</head><body><nav><a href='/'>Home</a> <a href='/blog'>Blog</a></nav>"
        f"<article><h1>{title}</h1>{body}</article><footer>© 2024 Example</footer></body></html>"
    )


def make_site(root: Path) -> Path:
    """A saved site: nested pages (one gzipped, one latin-1, one without text), a text file, assets, a hidden
    folder."""
    (root / "blog" / "2024").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / ".cache").mkdir()
    (root / "index.html").write_text(
        "<!-- saved from url=(0020)https://example.org/ -->\n"
        + page("Tides", "The moon pulls the sea.", "High water comes twice a day."),
        encoding="utf-8",
    )
    (root / "blog" / "post-1.htm").write_bytes(
        page("Café", "Un café au lait, s'il vous plaît.", charset="iso-8859-1").encode("latin-1")
    )
    with gzip.open(root / "blog" / "2024" / "post-2.html.gz", "wt", encoding="utf-8") as f:
        f.write(page("Gzipped", "Stored compressed.", head='<link rel="canonical" href="https://example.org/p2">'))
    (root / "blog" / "empty.html").write_text(
        "<html><head><script>var x = 1;</script></head><body><nav><a href='/'>Home</a></nav></body></html>"
    )
    (root / "notes.txt").write_text("Plain notes beside the pages.\n", encoding="utf-8")
    (root / "assets" / "style.css").write_text("body { color: red }")
    (root / "assets" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (root / ".cache" / "old.html").write_text(page("Hidden", "Never read."))
    return root


def read_tree(root: Path) -> tuple[list, ReadStats]:
    stats = ReadStats()
    files = corpus_files(root, stats=stats)
    docs = [doc for path, name in files for doc in read_documents(path, name=name, stats=stats)]
    return docs, stats


def test_a_folder_is_read_recursively_in_sorted_order_with_paths_as_sources(tmp_path):
    root = make_site(tmp_path / "site")
    assert [name for _, name in corpus_files(root)] == [
        "blog/2024/post-2.html.gz",
        "blog/empty.html",
        "blog/post-1.htm",
        "index.html",
        "notes.txt",
    ]
    docs, stats = read_tree(root)
    assert [(d.source_id, d.url, d.text) for d in docs] == [
        ("blog/2024/post-2.html.gz", "https://example.org/p2", "Gzipped\n\nStored compressed."),
        ("blog/post-1.htm", "", "Café\n\nUn café au lait, s'il vous plaît."),
        ("index.html", "https://example.org/", "Tides\n\nThe moon pulls the sea.\n\nHigh water comes twice a day."),
        ("notes.txt", "", "Plain notes beside the pages."),
    ]
    # WHATWG's label table reads latin-1 as cp1252
    assert docs[1].meta == {"path": "blog/post-1.htm", "charset": "cp1252", "title": "Café"}
    assert (stats.files, stats.documents, stats.skipped_empty, stats.skipped_other_files) == (5, 4, 1, 2)


def test_html_text_is_extracted_by_the_warc_readers_function(tmp_path):
    html = page("Tides", "The moon pulls the sea.").encode()
    path = tmp_path / "tides.html"
    path.write_bytes(html)
    (doc,) = read_documents(path)
    assert doc.text == main_text(html).text == "Tides\n\nThe moon pulls the sea."
    assert (doc.source_id, doc.meta["path"]) == ("tides.html", "tides.html")


@pytest.mark.parametrize(
    "content",
    [b"", b"  \n", b"<html><body><nav><a href='/'>Home</a></nav><script>x()</script></body></html>"],
    ids=["empty", "blank", "navigation-only"],
)
def test_a_page_without_text_is_skipped_and_counted_not_an_error(tmp_path, content):
    path = tmp_path / "nothing.html"
    path.write_bytes(content)
    stats = ReadStats()
    assert list(read_documents(path, stats=stats)) == []
    assert (stats.files, stats.documents, stats.skipped_empty) == (1, 0, 1)


def test_a_page_over_the_size_limit_is_skipped_and_counted(tmp_path):
    path = tmp_path / "big.html"
    path.write_text(page("Big", "word " * 100))
    stats = ReadStats()
    assert list(read_documents(path, stats=stats, max_line_bytes=200)) == []
    assert stats.skipped_too_large == 1


def test_binary_and_undecodable_files_are_errors_naming_the_file(tmp_path):
    site = make_site(tmp_path / "site")
    png = site / "blog" / "photo.html"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(ReadError) as info:
        read_tree(site)
    assert str(info.value) == f"{png}: binary data, not an HTML page (byte 0x00 at offset 8)"
    png.unlink()

    controls = tmp_path / "controls.htm"
    controls.write_bytes(b"<p>" + b"\x01\x02\x03\x04" * 10 + b"</p>")
    with pytest.raises(ReadError, match=r"controls\.htm: binary data, not an HTML page \(byte 0x01 at offset 3\)"):
        list(read_documents(controls))

    broken = tmp_path / "broken.html"
    broken.write_bytes(b'<html><head><meta charset="utf-8"></head><body><p>caf\x81\x8d</p></body></html>')
    with pytest.raises(ReadError) as info:
        list(read_documents(broken))
    assert str(info.value) == f"{broken}: undecodable: byte 0x81 at offset 53 is not utf-8 or cp1252 text"


def test_a_utf16_page_with_a_byte_order_mark_is_text(tmp_path):
    path = tmp_path / "wide.html"
    path.write_bytes("<html><body><p>Grüße aus Köln.</p></body></html>".encode("utf-16"))
    (doc,) = read_documents(path)
    assert doc.text == "Grüße aus Köln."


def test_gzip_errors_name_the_file(tmp_path):
    cut = tmp_path / "cut.html.gz"
    cut.write_bytes(gzip.compress(page("Cut", "text " * 200).encode())[:60])
    with pytest.raises(ReadError, match=r"cut\.html\.gz: truncated or corrupt gzip"):
        list(read_documents(cut))
    fake = tmp_path / "fake.html.gz"
    fake.write_text(page("Plain", "Not compressed."))
    with pytest.raises(ReadError, match=r"fake\.html\.gz: named \.gz but not gzip-compressed"):
        list(read_documents(fake))


def test_a_folder_without_corpus_files_is_an_error(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.html").write_text(page("Hidden", "x"))
    with pytest.raises(ReadError) as info:
        corpus_files(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}: no corpus files in this directory (1 other files; expected ")


def test_a_single_file_is_named_by_its_file_name(tmp_path):
    path = tmp_path / "one.html"
    assert corpus_files(path) == [(path, "one.html")]
