"""What `launch_round --wait` (and so `make demo`) prints when a round ends."""

import pytest

from generation.management.commands.launch_round import round_report
from generation.pipeline.evaluation import headline
from tests.factories import CandidateFactory, ModelVersionFactory, RoundFactory

pytestmark = pytest.mark.django_db


def test_the_report_gives_heldout_nll_with_intervals_an_unreliable_judge_losses_and_gates():
    rnd = RoundFactory(state="closed")
    rnd.forward_model = ModelVersionFactory(
        role="forward", name="round-1-forward", metrics={"loss_curve": [[1, 2.4], [2, 2.1], [3, 1.9]]}
    )
    heldout = {
        "n": 8,
        "tokens": 700,
        "old": {"nll": 2.2, "ci": [2.0, 2.4]},
        "new": {"nll": 2.25, "ci": [2.05, 2.45]},
        "delta": {"nll": 0.05, "ci": [-0.02, 0.12]},
        "improved": None,
        "old_model": "smol",
        "new_model": "round-1-forward",
    }
    ev = {"n": 8, "win_rate": 0.0, "tie_rate": 1.0, "judge_consistency": 0.0, "heldout": {"forward": heldout}}
    ev["headline"] = headline(ev)
    rnd.metrics = {"evaluation": ev}
    rnd.save()
    CandidateFactory(round=rnd, status="dropped", gate="repetitive_response", kept_by_curation=False)
    CandidateFactory(round=rnd, status="kept", kept_by_curation=True)
    lines = round_report(rnd)
    assert lines == [
        "Result: held-out answer NLL 2.200 → 2.250 nats/token (Δ +0.050, 95% CI [-0.020, +0.120]) on 8 seed pairs: "
        "no clear change",
        "held-out answers (8): smol 2.200 [2.000, 2.400] → round-1-forward 2.250 [2.050, 2.450] nats/token; "
        "Δ +0.050 [-0.020, +0.120]: no clear change",
        "judge: win rate 0%, ties 100% over 8 prompts; order-consistent on only 0%: not reliable at this model size",
        "round-1-forward: training loss 2.400 → 1.900 over 3 steps",
        "curation kept 1 pairs; output gates dropped 1 (response repeats itself)",
    ]
