"""Dataset export: a round's reviewed pairs or the seed set as training-ready files, streamed with constant
memory, each with a manifest (record ids and versions, thresholds, config hash, models) beside it.

SFT formats: chat `messages` JSONL (the source tag as system prompt, as the forward model is trained), Alpaca
JSON, Parquet (messages column), and a Hugging Face `datasets` directory (`save_to_disk`).
Preference formats (a round's human decisions, rows from generation/pipeline/preference.py): TRL's DPO pairs
(`prompt`/`chosen`/`rejected`) and KTO rows (`prompt`/`completion`/`label`), each as JSONL, Parquet or a
`datasets` directory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Count, OuterRef, Subquery, TextField, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from annotation.models import Candidate, Review, SeedExample
from generation.models import Round
from generation.pipeline import formats, preference
from generation.pipeline.formats.json_io import write_json_lines
from generation.pipeline.training import SYSTEM_PROMPTS

FORMATS = ("messages_jsonl", "alpaca_json", "parquet", "hf_dataset")
PREFERENCE_FORMATS = ("dpo_jsonl", "dpo_parquet", "dpo_hf_dataset", "kto_jsonl", "kto_parquet", "kto_hf_dataset")
ALL_FORMATS = FORMATS + PREFERENCE_FORMATS
# format -> (the rows it takes: sft | dpo | kto, what it is written as: text | parquet | hf)
_OUTPUTS = {
    "messages_jsonl": ("sft", "text"),
    "alpaca_json": ("sft", "text"),
    "parquet": ("sft", "parquet"),
    "hf_dataset": ("sft", "hf"),
    "dpo_jsonl": ("dpo", "text"),
    "dpo_parquet": ("dpo", "parquet"),
    "dpo_hf_dataset": ("dpo", "hf"),
    "kto_jsonl": ("kto", "text"),
    "kto_parquet": ("kto", "parquet"),
    "kto_hf_dataset": ("kto", "hf"),
}
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


def preference_kind(fmt: str) -> str | None:
    """The preference kind of a format, "dpo" or "kto"; None for an SFT format."""
    kind = _OUTPUTS[fmt][0] if fmt in _OUTPUTS else None
    return kind if kind in ("dpo", "kto") else None


def preference_rows(rnd: Round, kind: str, *, counts: Counter[str] | None = None) -> Iterator[dict[str, Any]]:
    """The round's human decisions as TRL preference rows (`kind` "dpo" or "kto"), candidates in id order; pairs
    whose prompt is a held-out seed instruction are left out. `counts` gets what was written and skipped."""
    if kind not in ("dpo", "kto"):
        raise ValueError(f"unknown preference kind {kind!r}; expected dpo or kto")
    counts = Counter() if counts is None else counts
    held_ids = rnd.cfg.heldout_ids
    held_prompts = frozenset(
        preference.normalise(i)
        for i in SeedExample.objects.filter(pk__in=held_ids).values_list("instruction", flat=True)
    )
    judged = preference.without_heldout(_judged(rnd), held_prompts, counts)
    if kind == "kto":
        yield from preference.kto_rows(judged, counts)
    else:
        pool = preference.preferred_index(_preferred(rnd, held_ids, _rejected_prompts(rnd)))
        yield from preference.dpo_rows(judged, pool, counts)


def _reviewed(rnd: Round, statuses: tuple[str, ...]) -> Any:
    """The round's candidates in `statuses`, in id order, with the response their reviewer was shown."""
    shown = Coalesce(NullIf("rewritten_response", Value("")), "segment__text", output_field=TextField())
    return rnd.candidates.filter(status__in=statuses).annotate(shown=shown).order_by("pk")


def _judged(rnd: Round) -> Iterator[preference.Judged]:
    # The reasons of the rejections still standing (not undone), one array per candidate.
    reasons = (
        Review.objects.filter(candidate=OuterRef("pk"), action=Review.Action.REJECT, undone_by__isnull=True)
        .values("candidate")
        .annotate(reasons=ArrayAgg("reason"))
        .values("reasons")
    )
    qs = (
        _reviewed(rnd, Candidate.REVIEWED)
        .annotate(reasons=Subquery(reasons))
        .values_list(
            "pk", "version", "status", "instruction", "shown", "final_instruction", "final_response", "reasons"
        )
    )
    for pk, version, status, instruction, shown, final_i, final_r, reasons_ in qs.iterator(chunk_size=CHUNK):
        yield preference.Judged(
            id=f"candidate-{pk}",
            version=version,
            status=status,
            model_instruction=instruction,
            model_response=shown,
            final_instruction=final_i,
            final_response=final_r,
            reject_reasons=tuple(r for r in reasons_ or () if r),
        )


def _rejected_prompts(rnd: Round) -> set[str]:
    """The normalised prompts of the round's rejected candidates: the only prompts a chosen response is sought for."""
    qs = rnd.candidates.filter(status=Candidate.Status.REJECTED).values_list("final_instruction", "instruction")
    return {preference.normalise(final or x) for final, x in qs.iterator(chunk_size=CHUNK)}


def _preferred(rnd: Round, held_ids: frozenset[int], wanted: set[str]) -> Iterator[preference.Preferred]:
    """Responses people approved for a prompt in `wanted`: the round's accepted and edited pairs, then the active
    seed pairs not held out of the round (matched on their instruction first, their responses read after)."""
    if not wanted:
        return
    decided = _reviewed(rnd, (Candidate.Status.ACCEPTED, Candidate.Status.EDITED)).values_list(
        "pk", "final_instruction", "instruction", "final_response", "shown"
    )
    for pk, final_i, instruction, final_r, shown in decided.iterator(chunk_size=CHUNK):
        if preference.normalise(final_i or instruction) in wanted:
            yield preference.Preferred(id=f"candidate-{pk}", prompt=final_i or instruction, response=final_r or shown)
    seeds = SeedExample.objects.filter(is_active=True).exclude(pk__in=held_ids).order_by("pk")
    ids = [
        pk
        for pk, i in seeds.values_list("pk", "instruction").iterator(chunk_size=CHUNK)
        if preference.normalise(i) in wanted
    ]
    for start in range(0, len(ids), CHUNK):
        for pk, instruction, response in seeds.filter(pk__in=ids[start : start + CHUNK]).values_list(
            "pk", "instruction", "response"
        ):
            yield preference.Preferred(id=f"seed-{pk}", prompt=instruction, response=response)


def round_export(*, rnd: Round, fmt: str, out: str | Path, include_unreviewed: bool = False) -> dict[str, Any]:
    """A round as a dataset file in `fmt`: its accepted and edited pairs (SFT formats), or its human decisions
    as preference rows (dpo_*, kto_*), with the manifest."""
    kind = preference_kind(fmt)
    if kind is None:
        rows = round_rows(rnd, include_unreviewed=include_unreviewed)
        return export_dataset(rows=rows, fmt=fmt, out=out, about=round_about(rnd))
    counts: Counter[str] = Counter()
    about = {**round_about(rnd), "preference": kind, "models_of_reviewed": _models_of_reviewed(rnd)}
    return export_dataset(rows=preference_rows(rnd, kind, counts=counts), fmt=fmt, out=out, about=about, counts=counts)


def _models_of_reviewed(rnd: Round) -> dict[str, dict[str, int]]:
    """Which models wrote the instructions and responses people judged (the candidates' lineage), with counts;
    a response nobody rewrote is the web text."""
    reviewed = rnd.candidates.filter(status__in=Candidate.REVIEWED)
    found: dict[str, dict[str, int]] = {}
    for what, key, missing in (("instruction", "augment_model", "unknown"), ("response", "rewrite_model", "web text")):
        rows = reviewed.values_list(f"lineage__{key}").annotate(n=Count("pk")).order_by(f"lineage__{key}")
        found[what] = {model or missing: n for model, n in rows}
    return found


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
    `<out>.records.tsv` (a list in memory grew by 16 MiB per 100k rows), and a running content hash over
    `content(row)`."""

    def __init__(self, rows: Iterator[dict[str, Any]], records: Path, content: Callable[[dict[str, Any]], Any]) -> None:
        self.rows, self.records, self.content, self.count = rows, records, content, 0
        self.digest = hashlib.sha256()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self.records.open("w", encoding="utf-8") as ids:
            ids.write("id\tversion\n")
            for row in self.rows:
                self.count += 1
                ids.write(f"{row['id']}\t{row['version']}\n")
                self.digest.update(json.dumps(self.content(row), sort_keys=True, ensure_ascii=False).encode())
                yield row


def _sft_content(row: dict[str, Any]) -> list[Any]:
    return [row["id"], row["version"], row["instruction"], row["response"]]


def _as_is(row: dict[str, Any]) -> dict[str, Any]:
    return row


def export_dataset(
    *,
    rows: Iterator[dict[str, Any]],
    fmt: str,
    out: str | Path,
    about: dict[str, Any] | None = None,
    counts: Counter[str] | None = None,
) -> dict[str, Any]:
    """Write `rows` to `out` in `fmt` (a file, or a directory for the `datasets` formats), `<out>.manifest.json`
    and the record ids with versions in `<out>.records.tsv`. Memory stays flat however many rows there are.
    SFT formats take `round_rows`/`seed_rows` rows; dpo_*/kto_* take `preference_rows` rows, whose `counts`
    (filled while they are written) go into the manifest."""
    if fmt not in ALL_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(ALL_FORMATS)}")
    kind, container = _OUTPUTS[fmt]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    records = Path(f"{out}.records.tsv")
    tracked = _Tracked(rows, records, _sft_content if kind == "sft" else _as_is)
    to_record = _record if kind == "sft" else _as_is
    if container == "text":
        with out.open("w", encoding="utf-8") as f:
            chunks = formats.export_rows(iter(tracked), fmt) if kind == "sft" else write_json_lines(tracked)
            for chunk in chunks:
                f.write(chunk)
    elif container == "parquet":
        _write_parquet(tracked, out, kind, to_record)
    else:
        _write_hf_dataset(tracked, out, kind, to_record)
    manifest = {
        "format": fmt,
        "path": str(out),
        "count": tracked.count,
        "records_file": records.name,
        "content_sha256": tracked.digest.hexdigest(),
        "created_at": timezone.now().isoformat(),
        **(about or {}),
    }
    if counts is not None:
        manifest["counts"] = dict(sorted(counts.items()))
    Path(f"{out}.manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _write_hf_dataset(rows: _Tracked, out: Path, kind: str, to_record: Callable[[dict[str, Any]], Any]) -> None:
    """Stream to Parquet with the format's schema first (so an empty export still has its columns), then let
    `datasets` build memory-mapped Arrow from it: memory stays flat."""
    import tempfile

    from datasets import Dataset, Features, load_dataset

    if out.exists():
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory(prefix="backforth-export-") as tmp:
        staged = Path(tmp, "records.parquet")
        _write_parquet(rows, staged, kind, to_record)
        if rows.count:
            dataset = load_dataset("parquet", data_files=str(staged), split="train", cache_dir=str(Path(tmp, "cache")))
            dataset.save_to_disk(str(out))
        else:  # the Parquet builder refuses a file without rows, and an empty dataset is saved as no shard at all
            features = Features.from_arrow_schema(_schema(kind))
            Dataset.from_dict({name: [] for name in features}, features=features).save_to_disk(str(out), num_shards=1)


def _schema(kind: str) -> Any:
    import pyarrow as pa

    turns = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    head = [("id", pa.string())]
    if kind == "sft":
        return pa.schema([*head, ("source", pa.string()), ("version", pa.int64()), ("messages", turns)])
    head += [("candidate", pa.string()), ("version", pa.int64()), ("source", pa.string())]
    if kind == "dpo":
        return pa.schema(
            [*head, ("chosen_from", pa.string()), ("prompt", turns), ("chosen", turns), ("rejected", turns)]
        )
    return pa.schema([*head, ("prompt", turns), ("completion", turns), ("label", pa.bool_())])


def _write_parquet(rows: _Tracked, out: Path, kind: str, to_record: Callable[[dict[str, Any]], Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema(kind)
    written = False
    with pq.ParquetWriter(out, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(to_record(row))
            if len(batch) >= CHUNK:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch.clear()
                written = True
        if batch or not written:
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
