"""Which state a round may move to from which (DESIGN.md "The round"). Pure.

The moves are those the code makes, derived from the stage order (`config.next_stage`, over both orders and
both review modes) plus:
- a draft round starts at train_backward (round_start), or at any job stage a stage run by hand starts it at
  (manage.py run_stage, the benchmarks);
- a job stage goes to itself (its failed chunks retried while the round is still there: stage_retry);
- every state but closed and cancelled can fail (a permanent job error; a second chunk failing records its own
  error) or be cancelled (round_cancel);
- a failed or cancelled round resumes at any job stage (stage_retry, or a stage launched by hand).
Closed is final. The only writer of `Round.state` is `services.round_transition`, which refuses anything else.
"""

from __future__ import annotations

from generation.pipeline import config as round_config

DRAFT, REVIEW, CLOSED, FAILED, CANCELLED = "draft", "review", "closed", "failed", "cancelled"
JOB_STAGES: tuple[str, ...] = round_config.JOB_STAGES
STATES: tuple[str, ...] = (
    DRAFT,
    "train_backward",
    *round_config.MODEL_STAGES,
    REVIEW,
    "train_forward",
    "evaluate",
    CLOSED,
    FAILED,
    CANCELLED,
)


class IllegalTransition(ValueError):
    """A move of a round's state the lifecycle does not allow (e.g. out of closed)."""

    def __init__(self, number: int | None, current: str, to: str, *, reason: str = "") -> None:
        self.number, self.current, self.to = number, current, to
        who = f"round {number}" if number is not None else "a round"
        super().__init__(reason or f"{who} cannot go from {current} to {to}")


class StaleTransition(IllegalTransition):
    """A legal move whose expected starting state no longer holds: another worker moved the round first."""

    def __init__(self, number: int | None, current: str, to: str, expected: frozenset[str]) -> None:
        who = f"round {number}" if number is not None else "a round"
        reason = f"{who} is at {current}, not {' or '.join(sorted(expected))}: it was not moved to {to}"
        super().__init__(number, current, to, reason=reason)
        self.expected = expected


def _stage_successors() -> dict[str, set[str]]:
    """stage -> the next stages `next_stage` can give (closed after the last), over every order and review mode."""
    out: dict[str, set[str]] = {}
    for order in round_config.ORDERS:
        for mode in round_config.REVIEW_MODES:
            cfg = round_config.RoundConfig.from_dict({"order": order, "review": {"mode": mode}})
            for stage in cfg.round_stages():
                out.setdefault(stage, set()).add(cfg.next_stage(stage) or CLOSED)
    return out


def _allowed() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {state: set() for state in STATES}
    for stage, following in _stage_successors().items():
        table[stage] |= following
    table[DRAFT] |= set(JOB_STAGES)
    for stage in JOB_STAGES:
        table[stage].add(stage)
    for state in STATES:
        if state not in (CLOSED, CANCELLED):
            table[state] |= {FAILED, CANCELLED}
    table[FAILED] |= set(JOB_STAGES)
    table[CANCELLED] |= set(JOB_STAGES)
    return {state: frozenset(to) for state, to in table.items()}


ALLOWED: dict[str, frozenset[str]] = _allowed()


def is_allowed(current: str, to: str) -> bool:
    return to in ALLOWED.get(current, frozenset())


def sources(to: str) -> frozenset[str]:
    """Every state a round may move to `to` from."""
    return frozenset(state for state, targets in ALLOWED.items() if to in targets)


def check(current: str, to: str, *, number: int | None = None) -> None:
    """Raise IllegalTransition unless a round at `current` may move to `to`."""
    if to not in STATES:
        raise IllegalTransition(number, current, to, reason=f"{to!r} is not a round state")
    if not is_allowed(current, to):
        raise IllegalTransition(number, current, to)
