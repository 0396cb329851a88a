"""Pricing in bounded memory against the database: reading the scores in batches, allocating in chunks and
writing the allocations in chunks gives the allocations and postings of the all-at-once computation, on a
random market with copies, near copies and negative scores (both engines)."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from marketplace.campaigns import get_campaign
from marketplace.db import (
    Allocation,
    DuplicateKind,
    JournalEntry,
    JournalTransaction,
    LedgerAccount,
    Sample,
    Score,
    Submission,
)
from marketplace.db.eligibility import is_payable
from marketplace.db.priced_catalog import catalog_fingerprints
from marketplace.ledger import verify_ledger
from marketplace.pricing import allocate_budget, allocation, eligible, runs
from marketplace.pricing.eligible import latest_complete_score_run
from marketplace.pricing.policy import campaign_policy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_copy_submission, make_provider, make_score_run, make_submission


def _random_market(factory: sessionmaker[Session], seed: int) -> int:
    """Five providers, a dozen submissions, ~400 samples (a copied file, near copies), scores of both signs
    and ties; returns the campaign id."""
    rng = random.Random(seed)
    with factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=rng.choice([1_000_003, 10**9 + 7, 997]))
        scores: dict[int, float] = {}
        first_subs = []
        for p in range(5):
            prov = make_provider(s)
            for f in range(rng.randint(1, 3)):
                sub, xs = make_submission(s, prov, [f"stream {seed}-{p}-{f}-{i}" for i in range(rng.randint(5, 60))])
                first_subs.append((sub, xs))
                for x in xs:
                    scores[x.id] = rng.choice([rng.gauss(0.01, 0.05), rng.choice([0.0, 0.02, -0.01, 0.5])])
        sub, xs = first_subs[0]
        _, copies = make_copy_submission(s, make_provider(s), sub, xs)
        for x in copies:
            scores[x.id] = 1.0  # scored high, never payable
        near = [x.id for _, xs in first_subs[1:] for x in xs[:2]]
        s.execute(update(Sample).where(Sample.id.in_(near[1::2]))
                  .values(duplicate_of_id=near[0], duplicate_kind=DuplicateKind.NEAR))
        make_score_run(s, camp, scores)
        return camp.id


def _in_memory(factory: sessionmaker[Session], campaign_id: int) -> dict[int, int]:
    """The obvious computation: every payable scored row in one list, one allocation over all of them."""
    with factory() as s:
        run = latest_complete_score_run(s, campaign_id)
        rows = s.execute(
            select(Score.sample_id, Sample.submission_id, Sample.provider_id, Score.score)
            .join(Sample, Sample.id == Score.sample_id).join(Submission, Submission.id == Sample.submission_id)
            .where(Score.score_run_id == run.id, is_payable())
        ).all()
        camp = get_campaign(s, campaign_id)
        res = allocate_budget(camp.budget_minor, [r[0] for r in rows], [r[3] for r in rows], [r[1] for r in rows],
                              [r[2] for r in rows], campaign_policy(camp.options, None), chunk_size=10**9)
        return res.amount_by_sample()


def _books(factory: sessionmaker[Session], period: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """(allocation rows, per-submission postings) of the period's run, without the run's id and period."""
    with factory() as s:
        txns = s.execute(select(JournalTransaction.id, JournalTransaction.submission_id, JournalTransaction.kind,
                                JournalTransaction.pricing_run_id)
                         .where(JournalTransaction.period == period).order_by(JournalTransaction.submission_id)).all()
        run_id = txns[0][3]
        allocs = [tuple(r) for r in s.execute(
            select(Allocation.sample_id, Allocation.submission_id, Allocation.provider_id, Allocation.score,
                   Allocation.value, Allocation.amount_minor, Allocation.catalog_sha256)
            .where(Allocation.pricing_run_id == run_id).order_by(Allocation.sample_id))]
        postings = []
        for tid, sub, kind, _ in txns:
            entries = sorted((code, side.value, int(amount)) for code, side, amount in s.execute(
                select(LedgerAccount.code, JournalEntry.side, JournalEntry.amount_minor)
                .join(LedgerAccount, LedgerAccount.id == JournalEntry.account_id)
                .where(JournalEntry.transaction_id == tid)))
            postings.append((sub, kind.value, entries))
        return allocs, postings


@pytest.mark.parametrize("seed", [1, 2])
def test_batched_pricing_posts_what_the_all_at_once_pricing_posts(session_factory: sessionmaker[Session],
                                                                  monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    campaign_id = _random_market(session_factory, seed)
    expected = _in_memory(session_factory, campaign_id)
    run_pricing(session_factory, campaign_id, "2026-11")  # default batch and chunk sizes: one of each here
    with monkeypatch.context() as m:  # every reader, chunk and writer a few rows at a time
        m.setattr(eligible, "ELIGIBLE_BATCH", 3)
        m.setattr(allocation, "CHUNK_SAMPLES", 5)
        m.setattr(runs, "ALLOCATION_CHUNK", 7)
        run_pricing(session_factory, campaign_id, "2026-12", batch_size=2)
    whole, whole_postings = _books(session_factory, "2026-11")
    batched, batched_postings = _books(session_factory, "2026-12")
    assert batched == whole and batched_postings == whole_postings
    assert {sid: amount for sid, *_, amount, _ in whole} == expected
    assert sum(expected.values()) > 0
    with session_factory() as s:
        ids = [row[0] for row in whole]
        assert catalog_fingerprints(s, ids) == {row[0]: row[-1] for row in whole}
        assert verify_ledger(s).ok
