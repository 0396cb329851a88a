"""Crash safety: a pricing run SIGKILLed at seeded points, then rerun, leaves the same books as no crash.

The child process runs the real runner (allocate, then batches of postings) with a hook that kills the
process at a seeded stage and transaction count: after the allocation commit, after a batch is written
but before it commits, or just after a commit. SQLite only (20+ seeds must stay fast); the posting code
path is the same on PostgreSQL and the concurrency test covers that engine.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import (
    Campaign,
    JournalEntry,
    JournalTransaction,
    LedgerAccount,
    PricingRun,
    create_db_engine,
    make_session_factory,
)
from marketplace.db.migrate import upgrade
from marketplace.ledger import verify_ledger
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

ROOT = Path(__file__).resolve().parents[2]
N_SEEDS = 20
POLICY = PricingPolicy(screen="none", cap_percentile=95, fee_bps=300)
PERIOD = "2026-11"

CHILD = r"""
import os, signal, sys
from marketplace.db import create_db_engine, make_session_factory
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing

url, campaign, stage, k, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

def hook(at, n_posted):
    if at == stage and n_posted >= k:
        os.kill(os.getpid(), signal.SIGKILL)

factory = make_session_factory(create_db_engine(url))
run_pricing(factory, campaign, sys.argv[7], PricingPolicy.model_validate_json(sys.argv[6]), batch_size=batch, hook=hook)
"""


Books = tuple[set[tuple[str, str, str, int]], dict[str, tuple[int, int]], list[str]]


def _ledger(factory: sessionmaker[Session]) -> Books:
    with factory() as s:
        rows = s.execute(
            select(JournalTransaction.idempotency_key, LedgerAccount.code, JournalEntry.side, JournalEntry.amount_minor)
            .join(JournalEntry, JournalEntry.transaction_id == JournalTransaction.id)
            .join(LedgerAccount, LedgerAccount.id == JournalEntry.account_id)
        ).all()
        totals = {a.code: (a.debits_minor, a.credits_minor) for a in s.scalars(select(LedgerAccount))}
        statuses = [r.status.value for r in s.scalars(select(PricingRun).order_by(PricingRun.id))]
        assert verify_ledger(s).ok
    return {(k, c, str(side), int(a)) for k, c, side, a in rows}, totals, statuses


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """A database where period 2026-11 was priced once (score run 1) and score run 2 awaits: a revaluation."""
    path = tmp_path_factory.mktemp("crash") / "template.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    factory = make_session_factory(engine)
    rng = random.Random(1234)
    with factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=1_000_003)
        provs = [make_provider(s) for _ in range(3)]
        samples = []
        for i in range(14):
            _, xs = make_submission(s, provs[i % 3], [f"crash sample {i}-{j}" for j in range(1 + i % 3)])
            samples += xs
        make_score_run(s, camp, {x.id: rng.uniform(-1, 10) for x in samples})
        cid = camp.id
    run_pricing(factory, cid, PERIOD, POLICY)
    with factory() as s, s.begin():
        camp2 = s.get(Campaign, cid)
        assert camp2 is not None
        make_score_run(s, camp2, {x.id: rng.uniform(-1, 10) for x in samples})
    engine.dispose()
    # The crash-free reference: how many transactions the revaluation posts.
    ref = path.with_name("reference.db")
    shutil.copy(path, ref)
    ref_engine = create_db_engine(f"sqlite:///{ref}")
    out = run_pricing(make_session_factory(ref_engine), cid, PERIOD, POLICY, batch_size=3)
    ref_engine.dispose()
    assert out.n_posted >= 6
    return path, cid, out.n_posted


@pytest.mark.slow
def test_killed_price_runs_resume_to_identical_books(template: tuple[Path, int, int], tmp_path: Path) -> None:
    path, cid, n_txn = template
    ref = path.with_name("reference.db")
    ref_engine = create_db_engine(f"sqlite:///{ref}")
    expected = _ledger(make_session_factory(ref_engine))
    ref_engine.dispose()
    assert expected[2] == ["complete", "complete"]

    killed_at = set()
    for seed in range(N_SEEDS):
        rng = random.Random(seed)
        stage = rng.choice(["allocated", "flushed", "flushed", "committed"])
        k = 0 if stage == "allocated" else rng.randint(1, n_txn)
        batch = rng.randint(1, 4)
        db = tmp_path / f"seed{seed}.db"
        shutil.copy(path, db)
        url = f"sqlite:///{db}"
        child = subprocess.run(
            [sys.executable, "-c", CHILD, url, str(cid), stage, str(k), str(batch), POLICY.model_dump_json(), PERIOD],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
        assert child.returncode == -signal.SIGKILL, (seed, child.returncode, child.stderr[-2000:])
        killed_at.add(stage)
        engine = create_db_engine(url)
        factory = make_session_factory(engine)
        run_pricing(factory, cid, PERIOD, POLICY, batch_size=rng.randint(1, 5))
        assert _ledger(factory) == expected, f"seed {seed}: books differ after crash at {stage} k={k} batch={batch}"
        engine.dispose()
    assert killed_at == {"allocated", "flushed", "committed"}
