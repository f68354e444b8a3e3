"""Generation benchmarks (issues 3 and 14). Run with `make bench` (or `.venv/bin/python -m bench.generation`).

- generation.vllm_vs_transformers  vLLM vs transformers batched (and one at a time), same prompts, tokens/s
- generation.logprob_vs_generative logprob scoring vs rationale-then-"Score: N" on the same real pairs, pairs/s
- generation.curate_prefix_cache_speedup  the curate stage's model passes (rubric score + both likelihoods) on the
                                   same real pairs, vLLM with prefix caching on vs off, pairs/s
- generation.e2e_vs_engine         backtranslation through RQ + PostgreSQL + a warm worker, with the round's default
                                   chunking, vs the bare engine given all prompts in one call, tokens/s; with the
                                   chunks' phases (load rows, engine, write) and the time outside the handler
- generation.worker_memory_flat    peak worker RSS over a 300-segment stage (3 chunks) vs its RSS after the first chunk

The rounds, rows and jobs live in the benchmark's own database and Redis DB (`own_database`), dropped afterwards:
a user's rounds list never sees them. Sizes: BENCH_SEGMENTS, BENCH_COMPARE, BENCH_SCORING_PAIRS,
BENCH_PREFIX_PAIRS, BENCH_MEMORY_SEGMENTS; `python -m bench.generation e2e` runs one part (backends, prefix, e2e,
memory).
"""

from __future__ import annotations

import os
import random
import re
import sys
import time

from bench.common import (
    WORKER_LOG,
    migrate,
    own_database,
    record,
    setup_django,
    start_worker,
    stop_worker,
    timed,
    web_segments,
)

N_SEGMENTS = int(os.environ.get("BENCH_SEGMENTS", "256"))
N_COMPARE = int(os.environ.get("BENCH_COMPARE", "32"))
N_ONE_AT_A_TIME = int(os.environ.get("BENCH_ONE_AT_A_TIME", "8"))
N_SCORING = int(os.environ.get("BENCH_SCORING_PAIRS", "48"))  # generative scoring writes 160 tokens a pair
N_PREFIX = int(os.environ.get("BENCH_PREFIX_PAIRS", "48"))
AUGMENT_TOKENS = 64
BENCH_DB = os.environ.get("BENCH_GENERATION_DB", "backforth_bench_generation")
BENCH_REDIS_DB = int(os.environ.get("BENCH_GENERATION_REDIS_DB", "12"))


def backtranslation_prompts(segments: list[str]):
    from generation.pipeline import parsing, prompts

    return [prompts.backward_messages(prompts.truncate(parsing.clean_text(s), 6000)[0]) for s in segments]


def tokens_per_s(outputs, seconds: float) -> float:
    return sum(o.completion_tokens for o in outputs) / seconds


def bench_backends(model: str, segments: list[str]) -> None:
    from generation.backends.base import GenerationParams
    from generation.backends.hf import TransformersBackend
    from generation.backends.vllm_backend import VLLMBackend
    from generation.pipeline import prompts

    convs = backtranslation_prompts(segments[:N_COMPARE])
    params = GenerationParams(max_new_tokens=AUGMENT_TOKENS)
    pre = prompts.BACKWARD_PREFIX

    hf = TransformersBackend(model, batch_size=16)
    hf.generate(convs[:2], params, assistant_prefix=pre)  # warm-up
    batched, t_batched = timed(lambda: hf.generate(convs, params, assistant_prefix=pre))
    hf.batch_size = 1
    single, t_single = timed(lambda: hf.generate(convs[:N_ONE_AT_A_TIME], params, assistant_prefix=pre))
    hf.unload()

    # No prefix cache: the rationale prompt repeats the logprob prompt almost whole, and a cache would hand the
    # second method a free prefill. Each method pays for its own prompts here.
    vl = VLLMBackend(model, enable_prefix_caching=False)
    vl.generate(convs[:2], params, assistant_prefix=pre)
    fast, t_fast = timed(lambda: vl.generate(convs, params, assistant_prefix=pre))
    record(
        "generation.vllm_vs_transformers",
        value=tokens_per_s(fast, t_fast),
        unit="completion tokens/s",
        baseline=tokens_per_s(batched, t_batched),
        transformers_one_at_a_time=round(tokens_per_s(single, t_single), 2),
        prompts=len(convs),
        max_new_tokens=AUGMENT_TOKENS,
    )
    bench_scoring(vl, segments[:N_SCORING])
    vl.unload()


def real_pairs(backend, segments: list[str]) -> list[tuple[str, str]]:
    """Each web passage with the instruction the backward prompt writes for it: what the curate stage scores."""
    from generation.backends.base import GenerationParams
    from generation.pipeline import parsing, prompts

    convs = backtranslation_prompts(segments)
    written = backend.generate(
        convs, GenerationParams(max_new_tokens=AUGMENT_TOKENS), assistant_prefix=prompts.BACKWARD_PREFIX
    )
    return [
        (parsing.parse_instruction(o.text) or "Explain this text.", s) for o, s in zip(written, segments, strict=True)
    ]


def bench_scoring(backend, segments: list[str]) -> None:
    """Logprob scoring (one forward pass) vs the papers' generative scoring, on the same real pairs."""
    from generation.backends.base import GenerationParams
    from generation.pipeline import parsing, prompts, scoring

    pairs = real_pairs(backend, segments)
    logprob_convs = [prompts.curate_messages(x, prompts.truncate(y, 6000)[0]) for x, y in pairs]
    gen_convs = [prompts.curate_messages(x, prompts.truncate(y, 6000)[0], rationale=True) for x, y in pairs]

    probs, t_lp = timed(
        lambda: backend.score(logprob_convs, prompts.SCORE_OPTIONS, assistant_prefix=prompts.SCORE_PREFIX)
    )
    outs, t_gen = timed(lambda: backend.generate(gen_convs, GenerationParams(max_new_tokens=160)))
    valid_lp = sum(1 for p in probs if 1.0 <= scoring.expected_score(p) <= 5.0)
    valid_gen = sum(1 for o in outs if parsing.parse_score(o.text) is not None)
    record(
        "generation.logprob_vs_generative",
        value=len(pairs) / t_lp,
        unit="pairs/s",
        baseline=len(pairs) / t_gen,
        pairs=len(pairs),
        valid_share_logprob=round(valid_lp / len(pairs), 4),
        valid_share_generative=round(valid_gen / len(pairs), 4),
        engine=backend.name,
    )


def bench_prefix_cache(model: str, segments: list[str]) -> None:
    """The curate stage's model passes (pair_signals: the rubric score, then log p(y | x̂) and log p(y)) over the
    same real pairs (a backward-written instruction for each web passage, as after augment), on two vLLM engines
    alike but for prefix caching. Each engine is warmed on two other pairs first, as a worker's engine is after
    its first chunk. Only the rubric pass can reuse the cache (its 189-token head): vLLM does not read the cache for
    requests that ask for prompt logprobs, and the likelihood contexts share 23 tokens, less than a block."""
    from bench.curation import seed_pairs
    from generation.backends.vllm_backend import CPU_BLOCK_SIZE, VLLMBackend
    from generation.handlers.stages import pair_likelihoods
    from generation.pipeline import parsing, prompts

    seconds: dict[bool, dict[str, float]] = {}
    short_seconds: dict[bool, dict[str, float]] = {}
    pairs: list[tuple[str, str]] = []
    # The same measure on human-written seed pairs (OASST, self-instruct): shorter responses, so the shared rubric
    # is a larger share of what is computed.
    short = [(r["instruction"], r["response"]) for r in random.Random(0).sample(seed_pairs(), N_PREFIX + 2)]
    for caching in (False, True):
        engine = VLLMBackend(model, enable_prefix_caching=caching)
        if not pairs:
            written = real_pairs(engine, segments[: N_PREFIX + 2])
            pairs = [(x, prompts.truncate(parsing.clean_text(y), 6000)[0]) for x, y in written]
        _curate_pass(engine, pairs[:2], pair_likelihoods)  # warm: the engine as a worker's after its first chunk
        seconds[caching] = _curate_pass(engine, pairs[2:], pair_likelihoods)
        _curate_pass(engine, short[:2], pair_likelihoods)
        short_seconds[caching] = _curate_pass(engine, short[2:], pair_likelihoods)
        threads = engine.threads
        engine.unload()
    on, off = seconds[True], seconds[False]
    n = len(pairs) - 2

    def rounded(d: dict[str, float]) -> dict[str, float]:
        return {k: round(v, 2) for k, v in d.items()}

    record(
        "generation.curate_prefix_cache_speedup",
        value=n / on["total"],
        unit="pairs/s (rubric score + both likelihoods), prefix caching on",
        baseline=n / off["total"],
        pairs=n,
        seconds={"on": rounded(on), "off": rounded(off)},
        score_pass_speedup=round(off["score"] / on["score"], 3),
        likelihood_pass_speedup=round(off["likelihood"] / on["likelihood"], 3),
        seed_pairs_speedup=round(short_seconds[False]["total"] / short_seconds[True]["total"], 3),
        seed_pairs_seconds={"on": rounded(short_seconds[True]), "off": rounded(short_seconds[False])},
        cpu_block_size=CPU_BLOCK_SIZE,
        vllm_threads=threads,
    )


def _curate_pass(backend, pairs: list[tuple[str, str]], pair_likelihoods) -> dict[str, float]:
    """The two calls `pair_signals` makes, timed apart."""
    from generation.pipeline import prompts

    convs = [prompts.curate_messages(x, y) for x, y in pairs]
    _, t_score = timed(lambda: backend.score(convs, prompts.SCORE_OPTIONS, assistant_prefix=prompts.SCORE_PREFIX))
    _, t_ll = timed(lambda: pair_likelihoods(backend, pairs))
    return {"score": t_score, "likelihood": t_ll, "total": t_score + t_ll}


def bench_end_to_end(model: str, segments: list[str]) -> None:
    """The same backtranslation through Backforth (PostgreSQL rows, RQ, a warm worker; the round's default chunk
    size) vs the bare engine. Both engines start with the same CPU thread settings (VLLMBackend chooses them)."""
    from django.db import connection
    from django.utils import timezone

    from generation.backends.base import GenerationParams
    from generation.backends.vllm_backend import VLLMBackend
    from generation.models import Corpus, Job, ModelVersion
    from generation.pipeline import prompts
    from generation.pipeline.config import RoundConfig
    from generation.services.corpus import corpus_add_passages
    from generation.services.rounds import round_cancel, round_create, stage_launch

    # Bare engine, all prompts in one call: its best case. The same decoding as the augment stage's (the round's
    # defaults: greedy with a repetition penalty), so both sides do the same work and write the same tokens.
    defaults = RoundConfig()
    engine = VLLMBackend(model)
    params = GenerationParams(
        max_new_tokens=AUGMENT_TOKENS,
        temperature=defaults.generation.temperature,
        seed=defaults.seed,
        repetition_penalty=defaults.generation.repetition_penalty,
    )
    convs = backtranslation_prompts(segments)
    engine.generate(convs[:2], params, assistant_prefix=prompts.BACKWARD_PREFIX)
    bare, t_bare = timed(lambda: engine.generate(convs, params, assistant_prefix=prompts.BACKWARD_PREFIX))
    threads = engine.threads
    engine.unload()

    corpus = Corpus.objects.create(name="bench")
    corpus_add_passages(corpus=corpus, passages=[{"text": s} for s in segments])
    warm_corpus = Corpus.objects.create(name="bench warm-up")
    corpus_add_passages(corpus=warm_corpus, passages=[{"text": s} for s in segments[:2]])
    base, _ = ModelVersion.objects.get_or_create(role="base", path=model, defaults={"name": "bench"})
    # The round's defaults for chunking (RoundConfig): what a user's round runs with.
    cfg = {
        "backend": "vllm",
        "sample_size": len(segments),
        "generation": {"augment_max_new_tokens": AUGMENT_TOKENS},
        "order": "filter_rewrite",
    }
    warm = round_create(corpus=warm_corpus, base_model=base, config={**cfg, "sample_size": 2})
    rnd = round_create(corpus=corpus, base_model=base, config=cfg)
    connection.close()

    worker = start_worker()
    try:
        stage_launch(round=warm, stage="augment")  # loads the model in the worker
        _wait(lambda: not warm.jobs.filter(stage="augment").exclude(status=Job.Status.DONE).exists(), 900)
        # The warm-up round stops here: left alone it goes on to curate, and the worker scored its pairs while the
        # measured round waited in the queue (23 s of a 291 s run, before issue 14).
        round_cancel(round=warm)
        _wait(lambda: not warm.jobs.filter(status=Job.Status.RUNNING).exists(), 300)
        started, launched_at = time.perf_counter(), timezone.now()
        stage_launch(round=rnd, stage="augment")
        _wait(lambda: not rnd.jobs.filter(stage="augment").exclude(status=Job.Status.DONE).exists(), 1800)
        t_e2e, seen_at = time.perf_counter() - started, timezone.now()
    finally:
        # The benchmark stops after augment: cancel what the round queued next, then stop the worker (a kill is
        # safe: the database is the source of truth). The database is dropped afterwards.
        round_cancel(round=rnd)
        stop_worker(worker)
    jobs = list(rnd.jobs.filter(stage="augment"))
    e2e_tokens = sum(j.result["completion_tokens"] for j in jobs)
    phases = {k: sum(j.result["phase_seconds"][k] for j in jobs) for k in ("backend", "load", "engine", "write")}
    in_handler = sum((j.finished_at - j.started_at).total_seconds() for j in jobs)
    # Launch (sampling, chunk rows), RQ delivery, claim, commit, stage_advance, and this loop's 0.25 s polling.
    phases["outside_handler"] = t_e2e - sum(phases.values())
    split = {k: round(v, 2) for k, v in phases.items()}
    ordered = sorted(jobs, key=lambda j: j.started_at)
    outside = {
        "launch_to_first_start": (ordered[0].started_at - launched_at).total_seconds(),
        "between_chunks": sum(
            (b.started_at - a.finished_at).total_seconds() for a, b in zip(ordered, ordered[1:], strict=False)
        ),
        "last_done_to_seen": (seen_at - max(j.finished_at for j in jobs)).total_seconds(),
    }
    print(
        f"[bench] e2e {t_e2e:.1f} s vs bare engine {t_bare:.1f} s; chunks' phases (s): "
        + ", ".join(f"{k} {v}" for k, v in split.items())
        + f"; in the handler {in_handler:.1f} s; outside it: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in outside.items())
    )
    bare_tokens = sum(o.completion_tokens for o in bare)
    record(
        "generation.e2e_vs_engine",
        value=e2e_tokens / t_e2e,
        unit="completion tokens/s",
        baseline=tokens_per_s(bare, t_bare),
        completion_tokens={"e2e": e2e_tokens, "bare_engine": bare_tokens},
        prompt_tokens={"e2e": sum(j.result["prompt_tokens"] for j in jobs), "bare_engine": _prompt_tokens(bare)},
        segments=len(segments),
        candidates_written=rnd.candidates.count(),
        chunks=len(jobs),
        chunk_size=RoundConfig().chunk_size,
        seconds={"e2e": round(t_e2e, 2), "bare_engine": round(t_bare, 2)},
        phase_seconds=split,
        outside_handler_seconds={k: round(v, 2) for k, v in outside.items()},
        worker_engine_tokens_per_s=round(e2e_tokens / phases["engine"], 2) if phases["engine"] else None,
        vllm_threads=threads,
        worker_vllm_threads=_worker_threads_line(),
    )


def _prompt_tokens(outputs) -> int:
    return sum(o.prompt_tokens for o in outputs)


def _worker_threads_line() -> str | None:
    """What the bench worker logged about its vLLM threads (its last start), to show both engines ran alike."""
    if not WORKER_LOG.is_file():
        return None
    found = re.findall(r"vLLM on CPU: (.*)", WORKER_LOG.read_text(errors="replace"))
    return found[-1].strip() if found else None


def _rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (the vLLM engine runs in a child), in MiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total / 1024


def bench_worker_memory(model: str) -> None:
    """A worker's memory over a 300-segment augment stage (3 chunks of 100) must stay flat: no growth per chunk."""
    from django.db import connection

    from generation.models import Corpus, Job, ModelVersion
    from generation.services.corpus import corpus_add_passages
    from generation.services.rounds import round_cancel, round_create, stage_launch

    n = int(os.environ.get("BENCH_MEMORY_SEGMENTS", "300"))
    segments = web_segments(n, min_chars=300, max_chars=800)
    corpus = Corpus.objects.create(name=f"bench memory {time.strftime('%Y%m%d-%H%M%S')}")
    corpus_add_passages(corpus=corpus, passages=[{"text": s} for s in segments])
    base, _ = ModelVersion.objects.get_or_create(role="base", path=model, defaults={"name": "bench"})
    rnd = round_create(
        corpus=corpus,
        base_model=base,
        config={
            "backend": "vllm",
            "sample_size": n,
            "chunk_size": 100,
            "batch_size": 100,
            "generation": {"augment_max_new_tokens": 8},
        },
    )
    connection.close()
    worker = start_worker()
    samples: list[tuple[int, float]] = []
    try:
        stage_launch(round=rnd, stage="augment")
        jobs = rnd.jobs.filter(stage="augment")
        total = jobs.count()
        deadline = time.monotonic() + 1800
        while (done := jobs.filter(status=Job.Status.DONE).count()) < total:
            if time.monotonic() > deadline:
                raise SystemExit("memory benchmark timed out")
            if not samples or samples[-1][0] != done:
                samples.append((done, _rss_mib(worker.pid)))
            time.sleep(0.5)
        samples.append((total, _rss_mib(worker.pid)))
    finally:
        round_cancel(round=rnd)  # the bench round stops here: nothing of it stays queued
        stop_worker(worker)
    rnd.delete()
    corpus.delete()
    # After the first chunk the model and its KV cache are in memory; from then on nothing may grow.
    after_first = next(rss for done, rss in samples if done >= 1)
    peak = max(rss for done, rss in samples if done >= 1)
    record(
        "generation.worker_memory_flat",
        value=peak,
        unit="MiB peak RSS (worker + engine), chunks 2..N",
        baseline=after_first,
        segments=n,
        chunks=total,
        rss_by_chunks_done={str(d): round(r) for d, r in samples[:: max(1, len(samples) // 10)]},
    )


def _wait(done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out waiting for the worker (see var/log/worker.log)")
        time.sleep(0.25)


def main() -> None:
    wanted = set(sys.argv[1:]) or {"backends", "prefix", "e2e", "memory"}  # `… e2e` runs one
    with own_database(BENCH_DB, redis_db=BENCH_REDIS_DB):
        setup_django()
        from django.conf import settings

        model = str(settings.DEFAULT_MODEL)
        segments = web_segments(N_SEGMENTS)
        if "backends" in wanted:
            bench_backends(model, segments)
        if "prefix" in wanted:
            bench_prefix_cache(model, segments)
        if {"e2e", "memory"} & wanted:
            migrate()
        if "e2e" in wanted:
            bench_end_to_end(model, segments)
        if "memory" in wanted:
            bench_worker_memory(model)


if __name__ == "__main__":
    main()
