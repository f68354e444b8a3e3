"""Dataset export: a round's reviewed pairs or the seed set as training-ready files, streamed with constant
memory, each with a manifest (record ids and versions, thresholds, config hash, models) beside it.

Formats: chat `messages` JSONL (the source tag as system prompt, as the forward model is trained), Alpaca JSON,
Parquet (messages column), and a Hugging Face `datasets` directory (`save_to_disk`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.utils import timezone

from annotation.models import Candidate, SeedExample
from generation.models import Round
from generation.pipeline import formats
from generation.pipeline.training import SYSTEM_PROMPTS

FORMATS = ("messages_jsonl", "alpaca_json", "parquet", "hf_dataset")
CHUNK = 2000


def round_rows(rnd: Round, *, include_unreviewed: bool = False) -> Iterator[dict[str, Any]]:
    """The round's accepted and edited pairs (and the kept ones nobody reviewed, if asked), as export rows."""
    statuses = [Candidate.Status.ACCEPTED, Candidate.Status.EDITED]
    if include_unreviewed:
        statuses.append(Candidate.Status.KEPT)
    qs = (
        rnd.candidates.filter(status__in=statuses)
        .order_by("pk")
        .values_list(
            "pk",
            "instruction",
            "final_instruction",
            "rewritten_response",
            "final_response",
            "version",
            "status",
            "segment__text",
        )
    )
    for pk, instruction, final_i, rewritten, final_r, version, status, text in qs.iterator(chunk_size=CHUNK):
        yield {
            "id": f"candidate-{pk}",
            "instruction": final_i or instruction,
            "response": final_r or rewritten or text,
            "source": "web",
            "tags": [status],
            "version": version,
        }


def seed_rows(*, source: str | None = None) -> Iterator[dict[str, Any]]:
    qs = SeedExample.objects.filter(is_active=True).order_by("pk")
    if source:
        qs = qs.filter(source=source)
    for row in qs.values("id", "instruction", "response", "source", "tags", "version").iterator(chunk_size=CHUNK):
        yield {**row, "id": f"seed-{row['id']}"}


def _messages(row: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPTS[row["source"]]},
        {"role": "user", "content": row["instruction"]},
        {"role": "assistant", "content": row["response"]},
    ]


def _record(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "source": row["source"], "version": row["version"], "messages": _messages(row)}


class _Tracked:
    """Passes rows through while writing what the manifest needs: each record's id and version go straight to
    `<out>.records.tsv` (a list in memory grew by 16 MiB per 100k rows), and a running content hash."""

    def __init__(self, rows: Iterator[dict[str, Any]], records: Path) -> None:
        self.rows, self.records, self.count = rows, records, 0
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self.records.open("w", encoding="utf-8") as ids:
            ids.write("id\tversion\n")
            for row in self.rows:
                self.count += 1
                ids.write(f"{row['id']}\t{row['version']}\n")
                self.digest.update(
                    json.dumps([row["id"], row["version"], row["instruction"], row["response"]]).encode()
                )
                yield row


def export_dataset(
    *, rows: Iterator[dict[str, Any]], fmt: str, out: str | Path, about: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write `rows` to `out` in `fmt` (a file, or a directory for hf_dataset), `<out>.manifest.json` and the
    record ids with versions in `<out>.records.tsv`. Memory stays flat however many rows there are."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    records = Path(f"{out}.records.tsv")
    tracked = _Tracked(rows, records)
    if fmt in ("messages_jsonl", "alpaca_json"):
        with out.open("w", encoding="utf-8") as f:
            for chunk in formats.export_rows(iter(tracked), fmt):
                f.write(chunk)
    elif fmt == "parquet":
        _write_parquet(tracked, out)
    else:
        _write_hf_dataset(tracked, out)
    manifest = {
        "format": fmt,
        "path": str(out),
        "count": tracked.count,
        "records_file": records.name,
        "content_sha256": tracked.digest.hexdigest(),
        "created_at": timezone.now().isoformat(),
        **(about or {}),
    }
    Path(f"{out}.manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _write_hf_dataset(rows: _Tracked, out: Path) -> None:
    """Stream to JSONL first, then let `datasets` build memory-mapped Arrow from it: memory stays flat."""
    import tempfile

    from datasets import load_dataset

    if out.exists():
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory(prefix="backforth-export-") as tmp:
        staged = Path(tmp, "records.jsonl")
        with staged.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(_record(row), ensure_ascii=False) + "\n")
        dataset = load_dataset("json", data_files=str(staged), split="train", cache_dir=str(Path(tmp, "cache")))
        dataset.save_to_disk(str(out))


def _write_parquet(rows: _Tracked, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema(
        [("id", pa.string()), ("source", pa.string()), ("version", pa.int64()), ("messages", pa.list_(message))]
    )
    with pq.ParquetWriter(out, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(_record(row))
            if len(batch) >= CHUNK:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch.clear()
        if batch or not rows.count:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))


def round_about(rnd: Round) -> dict[str, Any]:
    """What the manifest says about where a round's data came from."""
    # The stored record itself (what `config_hash` is the hash of), not the typed view `rnd.cfg`, which fills in
    # the keys an old round predates.
    stored = rnd.config
    return {
        "kind": "round",
        "round": rnd.number,
        "config_hash": rnd.config_hash,
        "curation": stored.get("curation"),
        "prompts": stored.get("prompts"),
        "seed_snapshot_hash": rnd.seed_snapshot.get("hash"),
        "models": {
            role: {"id": m.pk, "name": m.name, "path": m.path}
            for role, m in (
                ("base", rnd.base_model),
                ("backward", rnd.backward_model),
                ("curation", rnd.curation_model),
                ("forward", rnd.forward_model),
            )
            if m is not None
        },
    }
