"""Curation and held-out evaluation on the embedded model, ours vs a baseline in the same run. Run with `make bench`
(or `.venv/bin/python -m bench.curation`; about 5 minutes on 2 cores).

Labelled sets come from the shared seed sets (../shared/data/seed: OASST first turns and the self-instruct seed
tasks, 274 human-written pairs). Scoring goes through the backend protocol and the curate stage's own code
(`handlers.stages.pair_likelihoods`, the rubric prompt, `signals.keep_score`, `candidate_gate`'s gates).

- curation.auc_real_vs_mismatched      real pairs vs the same responses under another pair's instruction (a
                                       derangement): AUC of the default keep signal (agreement) vs the rubric's
- curation.auc_real_vs_mismatched_ifd  the same for IFD vs the rubric
- curation.auc_vs_degenerate           real pairs vs planted degenerate model output, ranked as the default keep
                                       rule ranks them (gated pairs last) vs the rubric alone
- curation.gate_recall_degenerate      share of planted degenerate items the gates drop; baseline: share of real
                                       pairs they drop (false positives)
- evaluation.heldout_nll_delta         per-token NLL of held-out reference answers under a forward model LoRA-tuned
                                       on the rest vs the base model, with the delta's bootstrap 95% CI

Sizes: BENCH_CURATION_PAIRS (40 real, as many mismatched and degenerate), BENCH_CURATION_STEPS (training steps),
BENCH_CURATION_LR. `python -m bench.curation signals` or `… heldout` runs one part.

Why one file of about 450 lines: like every bench script it is one area's measurements with their baselines side
by side (ours vs the rubric, the tuned model vs the base), and its parts share one set of seed pairs, one model
and one engine load; the labelled sets (derangements, planted degenerate output), the gates' view of an item and
the held-out fine-tune exist only for these numbers, so split out they would be helpers with a single caller.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.common import ROOT, record, setup_django, timed

if TYPE_CHECKING:
    from generation.pipeline.signals import CurationConfig

SEED_DIR = ROOT.parent / "shared" / "data" / "seed"
# Sized for about 5 minutes on 2 cores: scoring costs ~4 s per (real, mismatched, degenerate) triple on vLLM,
# a training step of 4 x 256 tokens ~12 s, loading vLLM ~35 s (measured: 5.3 min in all).
N_PAIRS = int(os.environ.get("BENCH_CURATION_PAIRS", "32"))
TRAIN_STEPS = int(os.environ.get("BENCH_CURATION_STEPS", "8"))
TRAIN_LR = float(os.environ.get("BENCH_CURATION_LR", "1.5e-3"))
TRAIN_BATCH, TRAIN_MAX_LENGTH = 4, 256
# Both held-out NLLs are read on transformers after training: a second vLLM engine for the trained model costs
# ~35 s to load, two transformers loads ~5 s. The same backend reads both models, so the delta is like for like.
HELDOUT_BACKEND = "transformers"
SEED = 0
# Ranks the pairs the keep rule can never keep (gated, or without a score) below every scored pair. Finite:
# statistics.auc leaves non-finite scores out, which would drop exactly the items the gates caught.
BOTTOM = -1e9

# What a backward model writes when it talks about the task instead of asking something: our own backward
# prompt, the usual phrasings of other pipelines, and a paraphrase of ours.
ECHOES = (
    "Write an instruction for the response below.",
    "Which question does the text above answer?",
    "Generate a question that the following text answers.",
    "What is the question for the answer below?",
    "Please provide an instruction based on the given response.",
    "What question does this text answer?",
)
EMPTY_RESPONSES = ("", "   ", "\n\n", "...", "-", "?!")
DEGENERATE_KINDS = ("repetition", "prompt_echo", "copied_instruction", "empty_response", "cut_response")


@dataclass(frozen=True)
class Item:
    """A labelled pair and how the curate stage would gate it."""

    instruction: str
    response: str
    label: bool  # True: a real pair
    kind: str
    response_cut: bool = False
    model_response: bool = True  # the response is model output (a rewrite): the gates check it too


# --- data ----------------------------------------------------------------------------------------------------


def seed_pairs() -> list[dict[str, str]]:
    """The shared seed sets as (instruction, response) rows: OASST's first turns, then the self-instruct tasks
    (a non-empty input joins the instruction after a blank line)."""
    rows = []
    with (SEED_DIR / "oasst_en_firstturn_top1_99.jsonl").open(encoding="utf-8") as f:
        rows += [{"instruction": r["instruction"], "response": r["response"]} for r in map(json.loads, f)]
    with (SEED_DIR / "selfinstruct_seed_tasks_175.jsonl").open(encoding="utf-8") as f:
        for r in map(json.loads, f):
            first = r["instances"][0]
            given = first["input"].strip()
            instruction = f"{r['instruction'].strip()}\n\n{given}" if given else r["instruction"]
            rows.append({"instruction": instruction, "response": first["output"]})
    if len(rows) != 274:
        raise SystemExit(f"expected 274 seed pairs in {SEED_DIR}, found {len(rows)}")
    return rows


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def _derangement(n: int, rng: random.Random) -> list[int]:
    """A permutation without fixed points: a shuffled cycle."""
    order = list(range(n))
    rng.shuffle(order)
    target = [0] * n
    for k, i in enumerate(order):
        target[i] = order[(k + 1) % n]
    return target


def degenerate(pair: dict[str, str], kind: str, i: int) -> Item:
    """One planted degenerate item of `kind` made from a real pair (the i-th of its kind picks the variant)."""
    x, y = pair["instruction"], pair["response"].strip()
    words = y.split()
    first = next((s for s in _sentences(y) if len(s.split()) >= 4), " ".join(words[:8]) + ".")
    if kind == "repetition":  # a decoding loop: one sentence over and over
        return Item(x, ("\n" if i % 2 else " ").join([first] * 12), False, kind)
    # Echoes and copies are faults of the instruction: the response is the web text, as after augment.
    if kind == "prompt_echo":
        return Item(ECHOES[i % len(ECHOES)], y, False, kind, model_response=False)
    if kind == "copied_instruction":  # the instruction is the response's first sentences (>= 12 words)
        taken: list[str] = []
        for s in _sentences(y):
            taken.append(s)
            if len(" ".join(taken).split()) >= 12:
                break
        copied = " ".join(taken)
        if len(copied.split()) > 40:
            copied = " ".join(copied.split()[:40])
        return Item(copied, y, False, kind, model_response=False)
    if kind == "empty_response":
        return Item(x, EMPTY_RESPONSES[i % len(EMPTY_RESPONSES)], False, kind)
    if kind == "cut_response":  # stopped at max_new_tokens mid-sentence
        cut = " ".join(words[: max(6, len(words) // 2)]).rstrip(".!?,;:")
        return Item(x, cut, False, kind, response_cut=True)
    raise ValueError(kind)


def labelled_sets(pairs: list[dict[str, str]], n: int) -> dict[str, list[Item]]:
    """n real pairs, the same responses under a deranged instruction, and n degenerate items made from n other
    pairs (with responses of 30 words or more, so every kind has sentences to work with). Deterministic."""
    rng = random.Random(SEED)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    real_ids = order[:n]
    real = [Item(pairs[i]["instruction"], pairs[i]["response"], True, "real") for i in real_ids]
    other = _derangement(n, rng)
    mismatched = [Item(real[other[k]].instruction, real[k].response, False, "mismatched") for k in range(n)]
    sources = [pairs[i] for i in order[n:] if len(pairs[i]["response"].split()) >= 30][:n]
    if len(sources) < n:
        raise SystemExit(f"need {n} seed pairs with 30-word responses for the degenerate set, found {len(sources)}")
    planted = [degenerate(p, DEGENERATE_KINDS[k % 5], k // 5) for k, p in enumerate(sources)]
    return {"real": real, "mismatched": mismatched, "degenerate": planted}


# --- scoring, as the curate stage does -----------------------------------------------------------------------


def curate_signals(backend, items: list[Item], max_chars: int) -> list[dict[str, Any]]:
    """The rubric score and the likelihood signals of each pair, as `run_curate` computes them."""
    from generation.handlers.stages import pair_likelihoods
    from generation.pipeline import parsing, prompts, scoring

    pairs = [(it.instruction, prompts.truncate(parsing.clean_text(it.response), max_chars)[0]) for it in items]
    probs = backend.score(
        [prompts.curate_messages(x, y) for x, y in pairs], prompts.SCORE_OPTIONS, assistant_prefix=prompts.SCORE_PREFIX
    )
    likelihoods = pair_likelihoods(backend, pairs)
    return [
        {"rubric": round(scoring.expected_score(scoring.normalize(p)), 6), **ll}
        for p, ll in zip(probs, likelihoods, strict=True)
    ]


def gate(item: Item) -> str | None:
    """`candidate_gate` on an item: the instruction is model output; the response too when it is a
    rewrite (real pairs are gated as rewrites, so their share gated is the gates' false-positive rate)."""
    from generation.pipeline import gates

    return gates.gate_reason(
        gates.GateInput(
            instruction=item.instruction,
            response=item.response,
            response_cut=item.response_cut,
            check_response=item.model_response,
        )
    )


def keep_rank(row: dict[str, Any], gated: str | None, curation: CurationConfig) -> float:
    """The default keep rule's ranking: its keep score, with pairs it can never keep (gated, no score) last."""
    from generation.pipeline import signals

    score = signals.keep_score(row, curation)
    return BOTTOM if gated or score is None else score


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def bench_signals(backend, sets: dict[str, list[Item]], model: str, seconds: dict[str, float]) -> None:
    from generation.pipeline import config

    items = sets["real"] + sets["mismatched"] + sets["degenerate"]
    rows, seconds["score"] = timed(lambda: curate_signals(backend, items, config.RoundConfig().max_segment_chars))
    print(f"[curation] scored {len(items)} pairs in {seconds['score']:.1f} s on {backend.name}")
    n_real, n_mis = len(sets["real"]), len(sets["mismatched"])
    real, mismatched, planted = rows[:n_real], rows[n_real : n_real + n_mis], rows[n_real + n_mis :]
    where = {"model": model, "backend": backend.name, "score_seconds": round(seconds["score"], 1)}
    record_mismatched(real, mismatched, where)
    record_degenerate(sets["real"], real, sets["degenerate"], planted, where)


def record_mismatched(real: list[dict], mismatched: list[dict], where: dict[str, Any]) -> None:
    """Real vs mismatched pairs, on the signals alone (the instructions are human-written: nothing to gate)."""
    from generation.pipeline import config, signals

    rule = signals.RANK_SIGNAL[config.RoundConfig().curation.keep]
    rows, labels = real + mismatched, [True] * len(real) + [False] * len(mismatched)
    aucs = signals.signal_aucs(rows, labels)
    details = {
        "sets": {"real": len(real), "mismatched": len(mismatched)},
        "scored": {s: sum(1 for r in rows if r.get(s) is not None) for s in signals.SIGNALS},
        **where,
    }
    record(
        "curation.auc_real_vs_mismatched",
        value=aucs[rule],
        unit="AUC",
        baseline=aucs["rubric"],
        signal=rule,
        signal_aucs={k: _r(v) for k, v in aucs.items()},
        **details,
    )
    record(
        "curation.auc_real_vs_mismatched_ifd",
        value=aucs["ifd"],
        unit="AUC",
        baseline=aucs["rubric"],
        signal="ifd",
        **details,
    )


def record_degenerate(
    real_items: list[Item], real: list[dict], planted_items: list[Item], planted: list[dict], where: dict[str, Any]
) -> None:
    """Real vs planted degenerate pairs, each through the gates as `candidate_gate` puts it."""
    from generation.pipeline import config, signals, statistics

    curation = config.RoundConfig().curation
    gated_real, gated_planted = [gate(it) for it in real_items], [gate(it) for it in planted_items]
    rows, gated = real + planted, gated_real + gated_planted
    labels = [True] * len(real) + [False] * len(planted)
    ranks = [keep_rank(r, g, curation) for r, g in zip(rows, gated, strict=True)]
    rubric_gated = [BOTTOM if g else r["rubric"] for r, g in zip(rows, gated, strict=True)]
    kept = signals.keep_decisions(rows, [bool(g) for g in gated], curation)
    sets = {"real": len(real), "degenerate": len(planted)}
    record(
        "curation.auc_vs_degenerate",
        value=statistics.auc(ranks, labels),
        unit="AUC",
        baseline=statistics.auc([r["rubric"] for r in rows], labels),
        keep_rule=curation.keep,
        rubric_with_gates=_r(statistics.auc(rubric_gated, labels)),
        signal_aucs_without_gates={k: _r(v) for k, v in signals.signal_aucs(rows, labels).items()},
        kept_share={
            "real": round(sum(kept[: len(real)]) / len(real), 4),
            "degenerate": round(sum(kept[len(real) :]) / len(planted), 4),
        },
        sets=sets,
        **where,
    )
    by_kind: dict[str, list[bool]] = {}
    for it, g in zip(planted_items, gated_planted, strict=True):
        by_kind.setdefault(it.kind, []).append(g is not None)
    record(
        "curation.gate_recall_degenerate",
        value=sum(g is not None for g in gated_planted) / len(planted),
        unit="fraction",
        baseline=sum(g is not None for g in gated_real) / len(real),
        recall_by_kind={k: round(sum(v) / len(v), 4) for k, v in by_kind.items()},
        kinds={k: len(v) for k, v in by_kind.items()},
        reasons_degenerate=dict(Counter(g for g in gated_planted if g)),
        reasons_real=dict(Counter(g for g in gated_real if g)),
        missed=[
            {"kind": it.kind, "instruction": it.instruction[:80], "response": it.response[:80]}
            for it, g in zip(planted_items, gated_planted, strict=True)
            if g is None
        ],
        real_gated=[
            {"reason": g, "instruction": it.instruction[:80]} for it, g in zip(real_items, gated_real, strict=True) if g
        ],
        sets=sets,
    )


# --- held-out NLL after fine-tuning ----------------------------------------------------------------------------


def heldout_split(pairs: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(training rows, held-out rows) by the round's own split (fraction 0.1, min 8)."""
    from generation.pipeline import config, training

    held = config.RoundConfig().heldout
    ids = set(
        training.heldout_split(
            ((i, p["instruction"]) for i, p in enumerate(pairs)),
            fraction=held.fraction,
            minimum=held.min,
            maximum=held.max,
        )
    )
    return [p for i, p in enumerate(pairs) if i not in ids], [p for i, p in enumerate(pairs) if i in ids]


def heldout_loglik(backend, held: list[dict[str, str]]) -> list[tuple[float, int]]:
    """(sum log p, tokens) of each reference answer after its instruction, asked as evaluation asks
    (`rounds.heldout_items`' forward items, read as `rounds._loglik_all` reads them)."""
    from generation.pipeline import training

    items = [(training.inference_messages(p["instruction"]), p["response"].strip()) for p in held]
    ll = backend.loglik([m for m, _ in items], [t for _, t in items])
    return [(x.total, x.tokens) for x in ll]


def train_forward(model: str, rows: list[dict[str, str]], out_dir: str):
    """LoRA on the seed-style forward examples, as `rounds._train` runs it (settings from the round defaults,
    made concrete by `training.resolve_hparams`), with more steps and a higher rate than a CPU round's six."""
    from generation.backends import finetune
    from generation.pipeline import config, training

    examples = [training.forward_example(r["instruction"], r["response"], "seed") for r in rows]
    cfg = config.RoundConfig().training.replace(
        max_steps=TRAIN_STEPS,
        learning_rate=TRAIN_LR,
        batch_size=TRAIN_BATCH,
        max_length=TRAIN_MAX_LENGTH,
        scale_down_on_cpu=False,  # its cap of 6 steps is what this benchmark needs to go past
    )
    hparams = training.resolve_hparams(cfg, on_gpu=finetune.on_gpu(), seed=SEED)
    result = finetune.finetune(base_path=model, out_dir=out_dir, examples=examples, hparams=hparams)
    return result, hparams


def bench_heldout(model: str, train_rows: list[dict[str, str]], held: list[dict[str, str]], seconds: dict) -> None:
    from generation.backends.registry import get_backend, release
    from generation.pipeline import statistics

    release()  # the scoring engine's memory goes to the trainer
    out = tempfile.mkdtemp(prefix="bench-curation-")
    try:
        (result, hparams), seconds["train"] = timed(lambda: train_forward(model, train_rows, out))
        started = time.perf_counter()
        lls = {}
        for name, path in (("base", model), ("trained", out)):
            backend = get_backend(HELDOUT_BACKEND, path, batch_size=8)
            lls[name] = heldout_loglik(backend, held)
            release()
        seconds["heldout_nll"] = time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)
    cmp = statistics.nll_comparison(lls["trained"], lls["base"], seed=SEED)
    losses = [loss for _, loss in result.loss_curve]
    half = len(losses) // 2
    record(
        "evaluation.heldout_nll_delta",
        value=cmp["new"]["nll"],
        unit="nats/token",
        baseline=cmp["old"]["nll"],
        delta=cmp["delta"]["nll"],
        ci=cmp["delta"]["ci"],
        improved=cmp["improved"],
        n=cmp["n"],
        steps=result.steps,
        tokens=cmp["tokens"],
        ci_trained=cmp["new"]["ci"],
        ci_base=cmp["old"]["ci"],
        epochs=round(result.epochs, 3),
        train_examples=len(train_rows),
        train_tokens=result.train_tokens,
        learning_rate=hparams.learning_rate,
        batch_size=hparams.batch_size,
        max_length=hparams.max_length,
        method=hparams.method,
        # Per-batch losses: each step sees new examples (less than an epoch), so single steps are noisy.
        train_loss_halves=[round(sum(x) / len(x), 4) for x in (losses[:half], losses[half:])] if half else None,
        loss_curve=result.loss_curve,
        train_seconds=round(seconds["train"], 1),
        backend=HELDOUT_BACKEND,
    )


def main() -> None:
    started = time.perf_counter()
    setup_django()
    from django.conf import settings

    from generation.backends.registry import get_backend, release

    wanted = set(sys.argv[1:]) or {"signals", "heldout"}
    model = str(settings.EMBEDDED_MODEL_DIR)
    pairs = seed_pairs()
    sets = labelled_sets(pairs, N_PAIRS)
    train_rows, held = heldout_split(pairs)
    print(
        f"[curation] {len(pairs)} seed pairs; scored sets: "
        + ", ".join(f"{k} {len(v)}" for k, v in sets.items())
        + f"; fine-tuning on {len(train_rows)} ({TRAIN_STEPS} steps of {TRAIN_BATCH} x {TRAIN_MAX_LENGTH} tokens,"
        f" lr {TRAIN_LR:g}), {len(held)} held out"
    )
    seconds: dict[str, float] = {}
    if "signals" in wanted:
        backend, seconds["load_engine"] = timed(lambda: get_backend("auto", model, batch_size=8))
        bench_signals(backend, sets, model, seconds)
    if "heldout" in wanted:
        bench_heldout(model, train_rows, held, seconds)
    release()
    seconds["total"] = time.perf_counter() - started
    print("[curation] seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    summary(wanted, seconds["total"])


def summary(wanted: set[str], total_s: float) -> None:
    from bench.common import RESULTS

    results = json.loads(RESULTS.read_text())
    keys = []
    if "signals" in wanted:
        keys += [
            "curation.auc_real_vs_mismatched",
            "curation.auc_real_vs_mismatched_ifd",
            "curation.auc_vs_degenerate",
            "curation.gate_recall_degenerate",
        ]
    if "heldout" in wanted:
        keys.append("evaluation.heldout_nll_delta")
    print(f"\n[curation] summary (ours vs baseline), {total_s / 60:.1f} min")
    for key in keys:
        r = results[key]
        print(f"  {key:38s} {r['value']:>8} vs {r['baseline']:>8} {r['unit']}  (ratio {r['ratio']})")
    if "heldout" in wanted:
        r = results["evaluation.heldout_nll_delta"]
        print(f"  held-out NLL delta {r['delta']:+.4f} nats/token, 95% CI {r['ci']}, improved: {r['improved']}")


if __name__ == "__main__":
    main()
