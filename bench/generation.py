"""Generation benchmarks (issue 3). Run with `make bench` (or `.venv/bin/python -m bench.generation`).

- generation.vllm_vs_transformers  vLLM vs transformers batched (and one at a time), same prompts, tokens/s
- generation.logprob_vs_generative logprob scoring vs rationale-then-"Score: N" on the same real pairs, pairs/s
- generation.e2e_vs_engine         backtranslation through RQ + PostgreSQL vs the bare engine, tokens/s
- generation.worker_memory_flat    peak worker RSS over a 1,000-segment stage vs its RSS after the first chunk
"""

from __future__ import annotations

import os
import sys
import time

from bench.common import record, setup_django, start_worker, stop_worker, timed, web_segments

N_SEGMENTS = int(os.environ.get("BENCH_SEGMENTS", "256"))
N_COMPARE = int(os.environ.get("BENCH_COMPARE", "64"))
N_ONE_AT_A_TIME = int(os.environ.get("BENCH_ONE_AT_A_TIME", "8"))
N_SCORING = int(os.environ.get("BENCH_SCORING_PAIRS", "128"))  # generative scoring writes 160 tokens a pair
AUGMENT_TOKENS = 64


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


def bench_scoring(backend, segments: list[str]) -> None:
    """Logprob scoring (one forward pass) vs the papers' generative scoring, on the same real pairs."""
    from generation.backends.base import GenerationParams
    from generation.pipeline import parsing, prompts, scoring

    # Real pairs: each web passage with an instruction the backward prompt wrote for it.
    convs = backtranslation_prompts(segments)
    written = backend.generate(
        convs, GenerationParams(max_new_tokens=AUGMENT_TOKENS), assistant_prefix=prompts.BACKWARD_PREFIX
    )
    pairs = [
        (parsing.parse_instruction(o.text) or "Explain this text.", s) for o, s in zip(written, segments, strict=True)
    ]
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


def bench_end_to_end(model: str, segments: list[str]) -> None:
    """The same backtranslation through Backforth (PostgreSQL rows, RQ, a warm worker) vs the bare engine."""
    from django.db import connection

    from generation.backends.base import GenerationParams
    from generation.backends.vllm_backend import VLLMBackend
    from generation.models import Corpus, Job, ModelVersion
    from generation.pipeline import prompts
    from generation.services.corpus import corpus_add_passages
    from generation.services.rounds import round_cancel, round_create, stage_launch

    # Bare engine, all prompts in one call: its best case.
    engine = VLLMBackend(model)
    params = GenerationParams(max_new_tokens=AUGMENT_TOKENS)
    convs = backtranslation_prompts(segments)
    engine.generate(convs[:2], params, assistant_prefix=prompts.BACKWARD_PREFIX)
    bare, t_bare = timed(lambda: engine.generate(convs, params, assistant_prefix=prompts.BACKWARD_PREFIX))
    engine.unload()

    stamp = time.strftime("%Y%m%d-%H%M%S")
    corpus = Corpus.objects.create(name=f"bench {stamp}")
    corpus_add_passages(corpus=corpus, passages=[{"text": s} for s in segments])
    warm_corpus = Corpus.objects.create(name=f"bench warm-up {stamp}")
    corpus_add_passages(corpus=warm_corpus, passages=[{"text": s} for s in segments[:2]])
    base, _ = ModelVersion.objects.get_or_create(role="base", path=model, defaults={"name": "bench"})
    cfg = {
        "backend": "vllm",
        "sample_size": len(segments),
        "chunk_size": 64,
        "batch_size": 64,
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
        started = time.perf_counter()
        stage_launch(round=rnd, stage="augment")
        _wait(lambda: not rnd.jobs.filter(stage="augment").exclude(status=Job.Status.DONE).exists(), 1800)
        t_e2e = time.perf_counter() - started
    finally:
        # The benchmark stops after augment: cancel what the round queued next, then stop the worker (a kill is
        # safe: the database is the source of truth).
        round_cancel(round=rnd)  # the bench round stops here: nothing of it stays queued
        stop_worker(worker)
    jobs = list(rnd.jobs.filter(stage="augment"))
    e2e_tokens = sum(j.result["completion_tokens"] for j in jobs)
    written = rnd.candidates.count()
    for r in (rnd, warm):  # leave the user's database as it was
        corpus = r.corpus
        r.delete()
        corpus.delete()
    record(
        "generation.e2e_vs_engine",
        value=e2e_tokens / t_e2e,
        unit="completion tokens/s",
        baseline=tokens_per_s(bare, t_bare),
        segments=len(segments),
        candidates_written=written,
        chunks=len(jobs),
    )


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
    """A worker's memory over a 1,000-segment augment stage (10 chunks) must stay flat: no growth per chunk."""
    from django.db import connection

    from generation.models import Corpus, Job, ModelVersion
    from generation.services.corpus import corpus_add_passages
    from generation.services.rounds import round_cancel, round_create, stage_launch

    n = int(os.environ.get("BENCH_MEMORY_SEGMENTS", "1000"))
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
    setup_django()
    from django.conf import settings

    model = str(settings.DEFAULT_MODEL)
    segments = web_segments(N_SEGMENTS)
    wanted = set(sys.argv[1:]) or {"backends", "e2e", "memory"}  # `python -m bench.generation e2e` runs one
    if "backends" in wanted:
        bench_backends(model, segments)
    if "e2e" in wanted:
        bench_end_to_end(model, segments)
    if "memory" in wanted:
        bench_worker_memory(model)


if __name__ == "__main__":
    main()
