"""Fine-tuning and evaluation benchmarks, ours vs a baseline in the same run.

- finetune.packing_speedup: SFT tokens/s (non-padding tokens) with TRL's BFD packing vs padded batches, same
  data, same model, same steps.
- evaluation.judge_pairs_per_s: pairwise judging from the next-token probabilities of " A"/" B" (ours, both
  orders) vs a generated verdict (the judge writes its reasoning, then "Verdict: A/B", both orders), same pairs.

    python -m bench.finetune [packing] [judge]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, record, setup_django, timed


def _forward_examples() -> list[dict]:
    from generation.pipeline import training

    rows = [json.loads(line) for line in (ROOT / "app" / "demo" / "seed.jsonl").read_text().splitlines()]
    return [training.forward_example(r["instruction"], r["response"], r.get("source", "seed")) for r in rows]


def bench_packing(model: str, steps: int = 3) -> None:
    from generation.backends.finetune import finetune, on_gpu
    from generation.pipeline import training

    examples = _forward_examples()
    cfg = training.TrainingConfig(max_steps=steps, batch_size=4, max_length=384)
    results = {}
    for packing in (True, False):
        hp = training.resolve_hparams(cfg.replace(packing=packing), on_gpu=on_gpu())
        out = Path(tempfile.mkdtemp(prefix="bench-ft-"))
        try:
            results[packing] = finetune(base_path=model, out_dir=out, examples=examples, hparams=hp, save=False)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    packed, padded = results[True], results[False]
    record(
        "finetune.packing_speedup",
        value=packed.tokens_per_s,
        unit="non-padding tokens/s (SFT, LoRA)",
        baseline=padded.tokens_per_s,
        steps=steps,
        batch_size=4,
        max_length=384,
        examples=len(examples),
        tokens={"packed": packed.train_tokens, "padded": padded.train_tokens},
        seconds={"packed": round(packed.seconds, 1), "padded": round(padded.seconds, 1)},
    )


def bench_judge(model: str, n: int = 16) -> None:
    from generation.backends.base import GenerationParams
    from generation.backends.registry import get_backend, release
    from generation.pipeline import evaluation, prompts, training

    questions = evaluation.parse_prompts_jsonl((ROOT / "generation" / "data" / "eval_prompts.jsonl").read_text())[:n]
    backend = get_backend("auto", model, enable_prefix_caching=False)
    answers = backend.generate(
        [training.inference_messages(q) for q in questions] * 2,
        GenerationParams(max_new_tokens=96, temperature=0.7, seed=1),
    )
    a, b = [g.text for g in answers[:n]], [g.text for g in answers[n:]]
    first = [prompts.judge_messages(q, x, y) for q, x, y in zip(questions, a, b, strict=True)]
    second = [prompts.judge_messages(q, y, x) for q, x, y in zip(questions, a, b, strict=True)]
    probs, ours_s = timed(
        lambda: backend.score(first + second, prompts.JUDGE_OPTIONS, assistant_prefix=prompts.JUDGE_PREFIX)
    )
    verdicts = [evaluation.pairwise_verdict(probs[i], probs[n + i]) for i in range(n)]

    def generative(conv: list[dict]) -> list[dict]:
        ask = conv[0]["content"] + "\nExplain briefly, then end with 'Verdict: A' or 'Verdict: B'."
        return [{"role": "user", "content": ask}]

    outputs, base_s = timed(
        lambda: backend.generate([generative(c) for c in first + second], GenerationParams(max_new_tokens=128))
    )
    parsed = [_verdict(o.text) for o in outputs]
    valid = sum(p is not None for p in parsed)
    release()
    record(
        "evaluation.judge_pairs_per_s",
        value=n / ours_s,
        unit="pairs/s (both orders)",
        baseline=n / base_s,
        pairs=n,
        valid_verdicts={"ours": 2 * n, "generative": valid, "of": 2 * n},
        ties=sum(v["verdict"] == "tie" for v in verdicts),
        backend=backend.name,
    )


def _verdict(text: str) -> str | None:
    import re

    found = re.findall(r"Verdict:\s*\[?\s*([AB])\b", text)
    return found[-1] if found else None


def main() -> None:
    setup_django()
    from django.conf import settings

    wanted = set(sys.argv[1:]) or {"packing", "judge"}
    model = str(settings.DEFAULT_MODEL)
    if "judge" in wanted:
        bench_judge(model)
    if "packing" in wanted:
        bench_packing(model)


if __name__ == "__main__":
    main()
