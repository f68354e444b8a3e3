"""Parquet, read record batch by record batch (`_PARQUET_BATCH_ROWS` rows) with pyarrow, imported only when a
Parquet file is read.

Pure module (no Django, no torch).
"""

from __future__ import annotations

from pathlib import Path

from generation.corpus.readers._common import Document, ReadError, ReadStats

_PARQUET_BATCH_ROWS = 256


def read_parquet(path: Path, *, name: str, text_field: str, id_field: str, max_line_bytes: int, stats: ReadStats):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ReadError(path, None, f"not a readable Parquet file ({exc})") from None
    with pfile:
        names = pfile.schema_arrow.names
        if text_field not in names:
            raise ReadError(path, None, f"no {text_field!r} column (columns: {', '.join(names) or 'none'})")
        row = 0
        try:
            for batch in pfile.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
                for record in batch.to_pylist():
                    row += 1
                    text = record.get(text_field)
                    if not isinstance(text, str):
                        raise ReadError(
                            path, None, f"row {row}: {text_field!r} is not a string (got {type(text).__name__})"
                        )
                    stats.bytes += len(text.encode("utf-8"))
                    if not text.strip():
                        stats.skipped_empty += 1
                        continue
                    doc_id = record.get(id_field)
                    source_id = str(doc_id) if doc_id not in (None, "") else f"{name}:{row}"
                    url = record.get("url")
                    meta = {k: v for k, v in record.items() if k not in (text_field, id_field, "url")}
                    yield Document(text=text, source_id=source_id, url=url if isinstance(url, str) else "", meta=meta)
        except (pa.ArrowException, OSError) as exc:
            raise ReadError(path, None, f"unreadable Parquet data after row {row} ({exc})") from None
