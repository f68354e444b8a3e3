"""Corpus ingestion benchmarks. Run with `.venv/bin/python -m bench.corpus` (about 5 minutes on 2 cores: compare
about 3 at 5,000 documents (5.4 at 10,000), large 2.3).

Everything runs on its own PostgreSQL database, `backforth_bench_corpus`, and Redis DB 13 (created and migrated at
the start, dropped and flushed at the end), never on the app's.

- corpus.ingest_vs_datatrove  documents/s of `services.corpus.ingest_files` (read → clean → filter → exact and
                              MinHash near-dedup → decontaminate → INSERT into PostgreSQL, one transaction) vs the
                              same steps done with datatrove's own components in one process on the same files.
- corpus.ingest_peak_rss_mib  peak RSS growth of `ingest_files` on one large synthetic JSONL.gz, against the
                              file's decompressed size (ratio = RSS / size; lower is better).

Inputs: the JSON lines files of ../shared/data/web (`*.json.gz`, `*.jsonl`; WARC is left out), copied
BENCH_CORPUS_DOCS / 1,529 times (≈ 5,000 documents) with a per-copy suffix on every id. The copies are exact
duplicates of each other: both sides must drop them, and the kept counts say whether they did.

Needs (requirements-bench.txt, installed by `make bench`): datatrove==0.10.1, spacy (datatrove's English word and
sentence splitter, a blank model: no download) and orjson (datatrove's JSONL reader and writer).

Sizes: BENCH_CORPUS_DOCS (5,000), BENCH_CORPUS_LARGE_MB (100; the decompressed size of the large file).
`python -m bench.corpus compare` or `… large` runs one part.

Why one file of about 450 lines: like every bench script it is one area's measurements with their baseline side
by side, here our ingestion and the same steps assembled from datatrove's components, on the same copied inputs
and with the settings that make them comparable (the filters both run, MinHash parameters) next to each other;
the input copies, the synthetic large file and the RSS sampling exist only for these numbers (bench.export reuses
`measure` and `rss_mib` from here).
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import SHARED_WEB, own_database, record, setup_django

BENCH_DB = os.environ.get("BENCH_CORPUS_DB", "backforth_bench_corpus")
BENCH_REDIS_DB = 13  # ingestion never queues jobs; a Redis DB of its own all the same
TARGET_DOCS = int(os.environ.get("BENCH_CORPUS_DOCS", "5000"))
LARGE_MB = float(os.environ.get("BENCH_CORPUS_LARGE_MB", "100"))
REPLACED_WORDS = 0.15  # share of words swapped per synthetic document: variants are not near-duplicates
RSS_SAMPLE_EVERY = 2000  # documents between RSS samples during the large ingest
COMPARED_FILTERS = ("GopherQualityFilter", "C4QualityFilter", "GopherRepetitionFilter")


# --- the database and memory --------------------------------------------------------------------------------------


def prepare_database() -> None:
    """Migrate the benchmark's own database (created by own_database; never any other database)."""
    from django.core.management import call_command
    from django.db import connection

    assert connection.settings_dict["NAME"] == BENCH_DB, connection.settings_dict["NAME"]
    call_command("migrate", verbosity=0)


def rss_mib() -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process, MiB."""
    status = Path("/proc/self/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+)", status).group(1)) / 1024 for k in ("VmRSS", "VmHWM")}


def reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS and return it, MiB.

    `resource.getrusage(...).ru_maxrss` is the lifetime peak and cannot be reset, so measuring two pipelines in one
    process would show the larger of them twice; writing 5 to /proc/self/clear_refs resets VmHWM (Linux >= 4.0).
    """
    Path("/proc/self/clear_refs").write_text("5")
    return rss_mib()["VmRSS"]


def measure(fn: Callable[[], Any]) -> tuple[Any, float, dict[str, float]]:
    """Run fn; (its result, wall seconds, {rss_before, peak, growth} in MiB)."""
    before = reset_peak_rss()
    started = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - started
    peak = rss_mib()["VmHWM"]
    return out, seconds, {"rss_before": round(before, 1), "peak": round(peak, 1), "growth": round(peak - before, 1)}


# --- inputs -----------------------------------------------------------------------------------------------------


def source_files() -> list[Path]:
    paths = sorted(SHARED_WEB.glob("*.json.gz")) + sorted(SHARED_WEB.glob("*.jsonl"))
    if not paths:
        raise SystemExit(f"need the JSON lines files of {SHARED_WEB}")
    return paths


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def make_copies(folder: Path, target_docs: int) -> tuple[list[Path], int, int]:
    """Each source file written `copies` times as `cNN_<name>` (same compression), every id suffixed `#copyNN`
    (ids are made from file and line where a record has none). Returns (paths in reading order, copies, docs)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = {p: list(read_records(p)) for p in source_files()}
    per_copy = sum(map(len, sources.values()))
    copies = max(1, round(target_docs / per_copy))
    paths: list[Path] = []
    for k in range(copies):
        for src, records in sources.items():
            out = folder / f"c{k:02d}_{src.name}"
            lines = "".join(
                json.dumps({**rec, "id": f"{rec.get('id') or f'{src.name}:{i}'}#copy{k:02d}"}, ensure_ascii=False)
                + "\n"
                for i, rec in enumerate(records, 1)
            ).encode("utf-8")
            out.write_bytes(gzip.compress(lines, compresslevel=6) if src.suffix == ".gz" else lines)
            paths.append(out)
    return sorted(paths), copies, per_copy * copies


def make_large(path: Path, target_mib: float, seed: int = 7) -> tuple[int, int]:
    """A JSONL.gz of varied copies of the shared documents, about `target_mib` MiB decompressed.

    Each record is a real document (C4, DCLM, Dolma) with `REPLACED_WORDS` of its words swapped for words drawn
    from the whole sample (English frequencies), lines and paragraphs kept: the copies mostly pass the quality
    filters their originals pass, but a 5-word shingle survives in a variant with p = 0.85^5 ≈ 0.44, so two
    variants of one document have Jaccard ≈ 0.2 / 0.68 ≈ 0.3, far below 0.8: neither exact nor near-duplicates.
    Returns (documents, decompressed bytes).
    """
    docs = [rec["text"] for src in source_files() for rec in read_records(src)]
    vocab = [w for text in docs for w in text.split()]
    rng = random.Random(seed)
    target = int(target_mib * 1024 * 1024)
    written = n = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as f:
        while written < target:
            text = docs[n % len(docs)]
            lines = []
            for line in text.split("\n"):
                words = line.split(" ")
                for i in range(len(words)):
                    if words[i] and rng.random() < REPLACED_WORDS:
                        words[i] = rng.choice(vocab)
                lines.append(" ".join(words))
            row = json.dumps({"id": f"synthetic-{n}", "text": "\n".join(lines)}, ensure_ascii=False) + "\n"
            f.write(row)
            written += len(row.encode("utf-8"))
            n += 1
    return n, written


# --- ours -------------------------------------------------------------------------------------------------------


_CORPUS_NUMBERS = itertools.count(1)


def ingest(paths: list[Path], name: str, on_document: Callable[[int], None] | None = None) -> Any:
    """`ingest_files` into a fresh corpus."""
    from generation.models import Corpus
    from generation.services.corpus import ingest_files

    corpus = Corpus.objects.create(name=f"{name} {time.strftime('%Y%m%d-%H%M%S')}-{next(_CORPUS_NUMBERS)}")
    return ingest_files(corpus=corpus, paths=paths, on_document=on_document)


def warm_up() -> None:
    """One small file through `ingest_files` first: imports, the eval prompts and the connection are not measured."""
    ingest([source_files()[-1]], "bench warm-up")


def bench_ours(paths: list[Path]) -> dict[str, Any]:
    warm_up()
    report, seconds, mem = measure(lambda: ingest(paths, "bench compare"))
    # 12 of every 13 passages are exact copies, which skip MinHash (the sha256 check comes first): the rate on
    # one copy alone (every passage new, so every one is MinHashed and inserted) is the other end.
    one = [p for p in paths if p.name.startswith("c00_")]
    single, single_s, _ = measure(lambda: ingest(one, "bench one copy"))
    return {
        "documents": report.documents,
        "seconds": round(seconds, 2),
        "docs_per_s": round(report.documents / seconds, 1),
        "passages": report.passages,
        "segments_inserted": report.added,
        "drops": dict(report.drops.most_common()),
        "rss_mib": mem,
        "one_copy": {
            "documents": single.documents,
            "segments_inserted": single.added,
            "docs_per_s": round(single.documents / single_s, 1),
        },
        "ru_maxrss_mib_lifetime": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


# --- datatrove --------------------------------------------------------------------------------------------------


def datatrove_minhash_config() -> Any:
    """datatrove's MinhashConfig with our parameters: 5-word shingles, and the LSH bands datasketch's
    `MinHashLSH(threshold=0.8, num_perm=128)` chooses (9 bands x 13 rows = 117 of the 128 hashes), so both sides
    send the same pairs to the same S-curve."""
    from datasketch import MinHashLSH
    from datatrove.pipeline.dedup.minhash import MinhashConfig

    from generation.corpus import dedup

    lsh = MinHashLSH(threshold=dedup.JACCARD_THRESHOLD, num_perm=dedup.NUM_PERM)
    return MinhashConfig(n_grams=dedup.SHINGLE_WORDS, num_buckets=lsh.b, hashes_per_bucket=lsh.r, seed=1)


def _xxhash64_str(text: str) -> int:
    """datatrove 0.10.1's shingle hash (`xxhash64`) for xxhash >= 4, which refuses str: xxhash < 4 (the pin of
    datatrove's `processing` extra) hashed a str as its UTF-8 bytes, so this is the same hash. The venv keeps
    xxhash 4 because `datasets` needs it."""
    import xxhash

    return xxhash.xxh64_intdigest(text.encode("utf-8"))


def run_datatrove(folder: Path, work: Path) -> dict[str, Any]:
    """JsonlReader → GopherQualityFilter → C4QualityFilter → GopherRepetitionFilter (`.filter(doc)` called in a
    loop) → datatrove's four MinHash stages (signatures, buckets, clusters, filter; on local disk under `work`)
    → JsonlWriter (uncompressed). The documents kept by the filters stay in memory between MinHash stage 1 and 4
    (a real datatrove run writes and re-reads them: that I/O is not counted here)."""
    from datatrove.pipeline.dedup.minhash import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    config = datatrove_minhash_config()
    filters = [GopherQualityFilter(), C4QualityFilter(), GopherRepetitionFilter()]
    seconds: Counter[str] = Counter()
    drops: Counter[str] = Counter()
    kept: list[Any] = []
    read = 0

    reader = JsonlReader(str(folder), glob_pattern="*", compression="infer")
    t = time.perf_counter()
    for doc in reader.run(rank=0, world_size=1):
        read += 1
        seconds["read"] += time.perf_counter() - t
        for f in filters:
            t = time.perf_counter()
            verdict = f.filter(doc)
            seconds[type(f).__name__] += time.perf_counter() - t
            if verdict is not True:
                drops[verdict[1] if isinstance(verdict, tuple) else type(f).__name__] += 1
                break
        else:
            kept.append(doc)
        t = time.perf_counter()

    sigs, buckets, remove = work / "sigs", work / "buckets", work / "remove"
    t = time.perf_counter()
    signatures = MinhashDedupSignature(output_folder=str(sigs), config=config)
    signatures._hash_func = _xxhash64_str
    signatures.run(iter(kept), rank=0, world_size=1)
    seconds["minhash_1_signatures"] = time.perf_counter() - t
    t = time.perf_counter()
    for bucket in range(config.num_buckets):
        MinhashDedupBuckets(input_folder=str(sigs), output_folder=str(buckets), config=config).run(
            rank=bucket, world_size=config.num_buckets
        )
    seconds["minhash_2_buckets"] = time.perf_counter() - t
    t = time.perf_counter()
    MinhashDedupCluster(input_folder=str(buckets), output_folder=str(remove), config=config).run()
    seconds["minhash_3_cluster"] = time.perf_counter() - t
    t = time.perf_counter()
    writer = JsonlWriter(str(work / "out"), compression=None)
    deduped = MinhashDedupFilter(input_folder=str(remove)).run(iter(kept), rank=0, world_size=1)
    written = sum(1 for _ in writer.run(deduped, rank=0, world_size=1))
    seconds["minhash_4_filter_and_write"] = time.perf_counter() - t
    return {
        "documents": read,
        "kept_by_filters": len(kept),
        "kept_after_dedup": written,
        "drops": dict(drops.most_common()),
        "seconds_by_step": {k: round(v, 2) for k, v in seconds.items()},
        "minhash": f"{config.num_buckets} bands x {config.hashes_per_bucket} hashes, {config.n_grams}-grams",
    }


def bench_datatrove(folder: Path, work: Path) -> dict[str, Any]:
    os.environ.setdefault("TQDM_DISABLE", "1")
    from datatrove.data import Document
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.utils.logging import logger

    logger.remove()  # datatrove logs every file and stage to stderr
    warm = Document(text=next(read_records(source_files()[0]))["text"], id="warm-up")
    for f in (GopherQualityFilter(), C4QualityFilter(), GopherRepetitionFilter()):
        f.filter(warm)  # loads spaCy's blank English tokenizer (datatrove's word splitter for English)
    out, seconds, mem = measure(lambda: run_datatrove(folder, work))
    return {**out, "seconds": round(seconds, 2), "docs_per_s": round(out["documents"] / seconds, 1), "rss_mib": mem}


def bench_compare(tmp: Path) -> None:
    paths, copies, docs = make_copies(tmp / "copies", TARGET_DOCS)
    print(f"[bench] {len(paths)} files, {copies} copies of {docs // copies:,} documents = {docs:,} documents")
    ours = bench_ours(paths)
    print(f"[bench] ours: {ours}")
    theirs = bench_datatrove(tmp / "copies", tmp / "datatrove")
    print(f"[bench] datatrove: {theirs}")
    from importlib.metadata import version

    record(
        "corpus.ingest_vs_datatrove",
        value=ours["docs_per_s"],
        unit="documents/s (read, filter, dedup; ours also cleans, splits into passages, decontaminates and INSERTs "
        "into PostgreSQL)",
        baseline=theirs["docs_per_s"],
        documents=docs,
        copies=copies,
        inputs=sorted({p.name.split("_", 1)[1] for p in paths}),
        duplicates_note=f"the {copies} copies are exact duplicates of each other (ids differ): both sides must keep "
        f"about 1/{copies} of what their filters keep",
        ours=ours,
        baseline_detail=theirs,
        baseline_contains="datatrove "
        + version("datatrove")
        + ": JsonlReader; GopherQualityFilter, C4QualityFilter, GopherRepetitionFilter (defaults, English, spaCy "
        "blank tokenizer; .filter(doc) in a loop, first drop wins); MinhashDedupSignature/Buckets/Cluster/Filter "
        "in one process on local disk with n_grams=5 and 9 bands x 13 hashes (datasketch's choice for threshold "
        "0.8 at 128 perms; no Jaccard check of candidates, ours checks >= 0.8); JsonlWriter (no compression). "
        "Documents stay in memory between MinHash stage 1 and 4. No passage split, no exact-hash pass (MinHash "
        "catches the copies), no decontamination, no database.",
        ours_contains="services.corpus.ingest_files: streaming readers, C4 line cleaning, boilerplate share, "
        "C4/Gopher quality/capitals/Gopher repetition per document, split_passages + passage filters, exact "
        "sha256 + datasketch MinHash (128 perms, 5-grams) with 9x13 LSH band keys looked up and stored in "
        "PostgreSQL per 1,000-passage batch (candidates verified >= 0.8), 13-gram "
        "decontamination, bulk INSERT into PostgreSQL (one transaction), per-reason drop examples",
        filters_dropped="none: all three run offline (datatrove splits English words and sentences with spaCy's "
        "blank tokenizer: no NLTK data, no network)",
        filters_compared=list(COMPARED_FILTERS),
        peak_rss_mib={"ours": ours["rss_mib"]["growth"], "datatrove": theirs["rss_mib"]["growth"]},
        cpus=os.cpu_count(),
    )


# --- large file -------------------------------------------------------------------------------------------------


def bench_large(tmp: Path) -> None:
    path = tmp / "large.jsonl.gz"
    t0 = time.perf_counter()
    n_docs, size = make_large(path, LARGE_MB)
    size_mib = size / 2**20
    print(
        f"[bench] {path.name}: {n_docs:,} documents, {size_mib:.0f} MiB decompressed, "
        f"{path.stat().st_size / 2**20:.0f} MiB gzip, made in {time.perf_counter() - t0:.0f} s"
    )
    samples: list[tuple[int, float]] = []

    def sample(done: int) -> None:
        if done % RSS_SAMPLE_EVERY == 0:
            samples.append((done, round(rss_mib()["VmRSS"], 1)))

    warm_up()
    report, seconds, mem = measure(lambda: ingest([path], "bench large", on_document=sample))
    # The dedup index lives in PostgreSQL (hashes, band keys, signatures), so RSS should stay flat: the slope
    # between the first and last samples says whether it does, and extrapolates to a 1 GiB file.
    (d0, r0), (d1, r1) = samples[0], samples[-1]
    per_doc = (r1 - r0) / max(1, d1 - d0)
    docs_1gb = report.documents * 1024 / size_mib
    growth_1gb = mem["growth"] + per_doc * (docs_1gb - report.documents)
    record(
        "corpus.ingest_peak_rss_mib",
        value=mem["growth"],
        unit="MiB peak RSS growth while ingesting one JSONL.gz (baseline: its decompressed size in MiB; "
        "ratio = RSS / size, lower is better)",
        baseline=size_mib,
        better="lower",
        documents=report.documents,
        passages=report.passages,
        segments_inserted=report.added,
        docs_per_s=round(report.documents / seconds, 1),
        seconds=round(seconds, 1),
        file_mib_gzip=round(path.stat().st_size / 2**20, 1),
        rss_mib=mem,
        rss_samples=samples[:: max(1, len(samples) // 20)],
        rss_growth_per_1k_docs_mib=round(per_doc * 1000, 2),
        drops=dict(report.drops.most_common(12)),
        scaled=f"1 GB scaled to {size_mib:.0f} MiB decompressed for time (2 cores). Extrapolation with the slope "
        f"between the first and last samples ({per_doc * 1000:.2f} MiB per 1,000 documents; the dedup index is in "
        f"PostgreSQL, only a 1,000-passage batch is in memory): a 1 GiB file ({docs_1gb:,.0f} documents) would grow "
        f"by about {growth_1gb:,.0f} MiB (ratio {growth_1gb / 1024:.2f})",
        extrapolated_1gib_growth_mib=round(growth_1gb),
        synthetic=f"real shared documents with {REPLACED_WORDS:.0%} of words replaced (neither exact nor near "
        "duplicates)",
    )


def main() -> None:
    wanted = set(sys.argv[1:]) or {"compare", "large"}
    if len(wanted) > 1:  # each part in a fresh process: memory freed by one part would hide the other's growth
        import subprocess

        for part in ("compare", "large"):
            if part in wanted:
                subprocess.run([sys.executable, "-m", "bench.corpus", part], check=True)
        return
    with own_database(BENCH_DB, redis_db=BENCH_REDIS_DB):
        setup_django()
        prepare_database()
        run_parts(wanted)


def run_parts(wanted: set[str]) -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-corpus-") as tmp:
        if "compare" in wanted:
            t = time.perf_counter()
            bench_compare(Path(tmp))
            print(f"[bench] compare: {time.perf_counter() - t:.0f} s")
        if "large" in wanted:
            t = time.perf_counter()
            bench_large(Path(tmp))
            print(f"[bench] large: {time.perf_counter() - t:.0f} s")
    print(f"[bench] total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
