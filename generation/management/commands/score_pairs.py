"""manage.py score_pairs IN --out OUT.jsonl — every curation signal, gate and keep decision for a dataset.

Reads (instruction, response) pairs — JSONL with instruction/response, Alpaca (JSON or JSONL), chat `messages`
JSONL or OpenAssistant trees — and writes each row back with `signals` (every signal by name), `gate` (the
reason an output gate drops it, or null), `keep_score` (what the keep rule ranks by) and `keep` (the decision),
scored by the embedded model unless --model says otherwise. The same code as the curate stage of a round.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from generation.backends.base import BackendError
from generation.backends.registry import KINDS, get_backend
from generation.handlers.stages import pair_signals
from generation.pipeline import config as round_config
from generation.pipeline import formats, gates, prompts, signals


def read_pairs(path: Path, fmt: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the file's records as they were, one per pair, and the parsed pairs) — the whole file is checked
    first, and any bad line is reported with its number (generation/pipeline/formats/). Records of several pairs
    (OpenAssistant trees) and tables are written back as the pair itself."""
    try:
        fmt, rows = formats.parse_path(path, fmt)
    except OSError as exc:
        raise CommandError(f"{path}: cannot read the file ({exc.strerror})") from exc
    except ValueError as exc:  # formats.FormatError included
        raise CommandError(f"{path}: {exc}") from exc
    if fmt == "alpaca_json":
        originals = json.loads(path.read_text(encoding="utf-8").lstrip("\ufeff"))
    elif fmt in ("alpaca_jsonl", "pairs_jsonl", "messages_jsonl", "lima_jsonl", "sharegpt_jsonl"):
        lines = path.read_text(encoding="utf-8").lstrip("\ufeff").split("\n")
        originals = [json.loads(lines[r["provenance"]["line"] - 1]) for r in rows]
    else:
        originals = [{"instruction": r["instruction"], "response": r["response"]} for r in rows]
    return originals, rows


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Command(BaseCommand):
    help = (
        "Score (instruction, response) pairs with every curation signal (rubric, agreement, IFD), the output "
        "gates and the default keep rule; writes each row back with signals, gate, keep_score and keep."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("input", help="a seed-set file in any import format (see import_seed)")
        parser.add_argument("--out", required=True, help="where to write the scored rows (JSONL)")
        parser.add_argument("--format", choices=formats.FORMATS_IN, help="the input's format (default: detected)")
        parser.add_argument("--model", help="a local Hugging Face model directory (default: the embedded model)")
        parser.add_argument("--backend", choices=KINDS, default="auto", help="auto: vLLM where it imports")
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--keep", choices=signals.KEEP_RULES, help="keep rule (default: the rounds' default)")
        parser.add_argument("--threshold", type=float, help="on the keep signal's scale")
        parser.add_argument("--top-k", type=int, help="keep the k best instead of a threshold")
        parser.add_argument("--min-agreement", type=float, help="floor on agreement under any rule")

    def handle(self, *args: Any, **options: Any) -> None:
        curation = self._curation(options)
        originals, rows = read_pairs(Path(options["input"]), options["format"])
        model = options["model"] or str(settings.DEFAULT_MODEL)
        if not Path(model, "config.json").is_file():
            raise CommandError(f"{model} is not a Hugging Face model directory (no config.json)")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            backend = get_backend(options["backend"], model, batch_size=options["batch_size"])
        except BackendError as exc:
            raise CommandError(str(exc)) from exc
        max_chars = round_config.RoundConfig().max_segment_chars
        pairs = [(r["instruction"], prompts.truncate(r["response"], max_chars)[0]) for r in rows]
        scored: list[dict[str, Any]] = []
        bar = tqdm(total=len(pairs), desc="scoring pairs", unit="pair", disable=options["verbosity"] == 0)
        size = options["batch_size"]
        for i in range(0, len(pairs), size):
            for _dist, sig in pair_signals(backend, pairs[i : i + size]):
                sig.pop("option_mass", None)
                scored.append(sig)
            bar.update(len(pairs[i : i + size]))
        bar.close()
        gated = [gates.gate_reason(gates.GateInput(instruction=x, response=y)) for x, y in pairs]
        keep = signals.keep_decisions(scored, [g is not None for g in gated], curation)
        out = Path(options["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            for original, sig, gate, kept in zip(originals, scored, gated, keep, strict=True):
                row = {
                    **original,
                    "signals": {k: _finite(v) for k, v in sig.items()},
                    "gate": gate,
                    "keep_score": _finite(signals.keep_score(sig, curation)),
                    "keep": kept,
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        n_gated = sum(g is not None for g in gated)
        self.stdout.write(
            f"Scored {len(rows)} pairs with {Path(model).name} ({backend.name}): {sum(keep)} kept by "
            f"'{curation.keep}', {n_gated} gated → {out}"
        )

    def _curation(self, options: dict[str, Any]) -> round_config.CurationConfig:
        asked: dict[str, Any] = {}
        for key, option in (("keep", "keep"), ("threshold", "threshold"), ("top_k", "top_k")):
            if options[option] is not None:
                asked[key] = options[option]
        if options["min_agreement"] is not None:
            asked["min_agreement"] = options["min_agreement"]
        try:
            return round_config.parse({"curation": asked}).curation
        except round_config.ConfigError as exc:
            raise CommandError(str(exc)) from exc
