"""`python -m bench.report`: bench/results.json as the Markdown table the README's benchmark section shows (key,
value, baseline, ratio, unit), so a run's figures can be pasted as they are."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS


def _number(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return "–" if x is None else str(x)
    if isinstance(x, int | float):
        return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"
    return str(x)


def table(results: dict[str, dict[str, Any]]) -> str:
    rows = ["| key | ours | baseline | ratio | unit |", "|---|---:|---:|---:|---|"]
    for key in sorted(results):
        r = results[key]
        unit = str(r.get("unit", "")).replace("|", "\\|")
        figures = " | ".join(_number(r.get(k)) for k in ("value", "baseline", "ratio"))
        rows.append(f"| `{key}` | {figures} | {unit} |")
    return "\n".join(rows)


def main() -> None:
    path = Path(sys.argv[1]) if sys.argv[1:] else RESULTS
    print(table(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
