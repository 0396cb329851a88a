"""PostgreSQL under concurrency: 6 processes post overlapping pricing runs (>= 2,000 credits).

Two processes per (period, score run): each pair shares one pricing run (its unique key) and races on
every transaction key; period 2026-11 is priced from two score runs at once (a revaluation racing the
first credit). Afterwards: no idempotency key twice, no submission credited twice by one run, every
transaction balances, and ``verify`` passes (credits = the latest complete run's allocation).
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import random

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import (
    AccountKind,
    EntrySide,
    JournalEntry,
    JournalTransaction,
    LedgerAccount,
    Sample,
    Score,
    Submission,
    SubmissionStatus,
    is_postgres,
)
from marketplace.ledger import verify_ledger
from tests.support.catalog import make_campaign, make_provider, make_score_run
from tests.support.ledger_workers import price_worker

N_SUBMISSIONS = 1100


def _bulk_pool(session: Session, provider_ids: list[int], n: int) -> list[int]:
    subs = [{"provider_id": provider_ids[i % len(provider_ids)], "filename": f"f{i}.jsonl", "format": "jsonl",
             "content_sha256": hashlib.sha256(f"sub{i}".encode()).hexdigest(), "byte_size": 10, "status":
             SubmissionStatus.ACCEPTED, "n_records": 1, "n_accepted": 1, "n_quarantined": 0} for i in range(n)]
    session.execute(insert(Submission), subs)
    rows = session.execute(select(Submission.id, Submission.provider_id).order_by(Submission.id)).all()
    samples = [{"submission_id": sid, "provider_id": pid, "record_index": 0, "text": f"sample text {sid}",
                "content_hash": hashlib.sha256(f"sample text {sid}".encode()).hexdigest(), "n_chars": 12}
               for sid, pid in rows]
    session.execute(insert(Sample), samples)
    return list(session.scalars(select(Sample.id).order_by(Sample.id)))


@pytest.mark.slow
def test_concurrent_overlapping_pricing_runs(engine: Engine, session_factory: sessionmaker[Session],
                                             db_url: str) -> None:
    if not is_postgres(engine):
        pytest.skip("row locks and concurrent writers are a PostgreSQL matter; SQLite serialises writers")
    rng = random.Random(7)
    with session_factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=50_000_000)
        provs = [make_provider(s).id for _ in range(5)]
        sample_ids = _bulk_pool(s, provs, N_SUBMISSIONS)
        # Score rows in bulk: make_score_run with an empty mapping, then insert the scores ourselves.
        runs = []
        for _ in range(2):
            run = make_score_run(s, camp, {})
            s.execute(insert(Score), [{"score_run_id": run.id, "approximator_version_id": run.approximator_version_id,
                                       "sample_id": sid, "score": rng.uniform(0, 5)} for sid in sample_ids])
            runs.append(run.id)
        cid = camp.id
    jobs = [("2026-11", runs[0]), ("2026-11", runs[0]), ("2026-11", runs[1]), ("2026-11", runs[1]),
            ("2026-12", runs[1]), ("2026-12", runs[1])]
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    barrier = manager.Barrier(len(jobs))
    with ctx.Pool(len(jobs)) as pool:
        results = pool.starmap(price_worker, [(db_url, cid, p, r, rng.choice([50, 200, 400]), barrier)
                                              for p, r in jobs])
    manager.shutdown()
    assert sum(r["created"] for r in results) == 3  # one pricing run per (period, score run)
    with session_factory() as s:
        n_credits = s.scalar(
            select(func.count()).select_from(JournalEntry)
            .join(LedgerAccount, LedgerAccount.id == JournalEntry.account_id)
            .where(LedgerAccount.kind == AccountKind.PROVIDER_PAYABLE, JournalEntry.side == EntrySide.CREDIT)
        )
        assert n_credits >= 2000
        dup = s.execute(
            select(JournalTransaction.pricing_run_id, JournalTransaction.submission_id, func.count())
            .group_by(JournalTransaction.pricing_run_id, JournalTransaction.submission_id)
            .having(func.count() > 1)
        ).all()
        assert dup == []
        assert sum(r["posted"] for r in results) == s.scalar(select(func.count()).select_from(JournalTransaction))
        report = verify_ledger(s)
        assert report.ok, report.violations[:5]
        assert report.stats["submissions_checked"] >= 2 * N_SUBMISSIONS
        budget = s.scalar(select(LedgerAccount).where(LedgerAccount.kind == AccountKind.CAMPAIGN_BUDGET))
        assert budget is not None and budget.debits_minor - budget.credits_minor == 2 * 50_000_000
