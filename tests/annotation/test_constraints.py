"""Constraints hold in PostgreSQL itself, not only in forms."""

import pytest
from django.db import IntegrityError, connection, transaction

from annotation.models import Candidate, SeedExample
from generation.models import Job, Segment
from tests.factories import CandidateFactory, RoundFactory, SegmentFactory

pytestmark = pytest.mark.django_db


def test_postgres_refuses_a_second_candidate_for_the_same_round_and_segment():
    first = CandidateFactory()
    # Raw SQL: no ORM validation in the way, the database alone must say no.
    with (
        pytest.raises(IntegrityError, match="candidate_unique_round_segment"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "insert into annotation_candidate (round_id, segment_id, instruction, rewritten_response, rationale,"
            " status, final_instruction, final_response, lineage, error, version, created_at, updated_at)"
            " values (%s, %s, 'x', '', '', 'augmented', '', '', '{}', '', 1, now(), now())",
            [first.round_id, first.segment_id],
        )
    assert Candidate.objects.count() == 1


def test_same_segment_may_appear_in_two_rounds():
    seg = SegmentFactory()
    CandidateFactory(round=RoundFactory(corpus=seg.corpus), segment=seg)
    CandidateFactory(round=RoundFactory(corpus=seg.corpus), segment=seg)
    assert seg.candidates.count() == 2


@pytest.mark.parametrize("score", [0.5, 5.5])
def test_scores_outside_1_to_5_are_refused(score):
    with pytest.raises(IntegrityError, match="candidate_score_range"), transaction.atomic():
        CandidateFactory(score=score)


def test_exact_duplicate_segments_in_one_corpus_are_refused():
    seg = SegmentFactory()
    with pytest.raises(IntegrityError, match="segment_unique_hash_per_corpus"), transaction.atomic():
        Segment.objects.create(corpus=seg.corpus, text=seg.text + " ", content_hash=seg.content_hash)


def test_empty_seed_pairs_are_refused():
    with pytest.raises(IntegrityError, match="seedexample_not_empty"), transaction.atomic():
        SeedExample.objects.create(instruction="Do something", response="")


def test_one_job_row_per_round_stage_chunk():
    rnd = RoundFactory()
    Job.objects.create(round=rnd, stage="augment", chunk=3)
    with pytest.raises(IntegrityError, match="job_unique_round_stage_chunk"), transaction.atomic():
        Job.objects.create(round=rnd, stage="augment", chunk=3)
    # Jobs outside rounds (imports, health checks) are not constrained.
    Job.objects.create(stage="ping")
    Job.objects.create(stage="ping")
    assert Job.objects.filter(stage="ping").count() == 2
