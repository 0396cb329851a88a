"""``ledger verify`` reads the journal and the priced catalog in batches: a batch of one finds exactly
what the default batches find, on a market priced in two periods and tampered with in three ways."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import priced_catalog
from marketplace.ledger import verify
from marketplace.ledger.verify import VerifyReport, verify_ledger
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission
from tests.support.tamper import bypass_ledger_triggers

POLICY = PricingPolicy(cap_percentile=100, netting="sample", screen="none")


def _market(factory: sessionmaker[Session]) -> list[int]:
    """Three providers, five submissions, twelve samples, priced for 2026-11 and 2026-12; returns sample ids."""
    with factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=10_000)
        ids: list[int] = []
        for p in range(3):
            prov = make_provider(s)
            for f in range(2 if p else 1):
                _, xs = make_submission(s, prov, [f"batch text {p}-{f}-{i}" for i in range(12 // 5 + 1)])
                ids += [x.id for x in xs]
        make_score_run(s, camp, {sid: 1.0 + (sid % 7) for sid in ids})
        cid = camp.id
    for period in ("2026-11", "2026-12"):
        run_pricing(factory, cid, period, POLICY)
    return sorted(ids)


def _report(factory: sessionmaker[Session]) -> VerifyReport:
    with factory() as s:
        return verify_ledger(s)


def test_a_batch_of_one_finds_what_the_default_batches_find(engine: Engine, session_factory: sessionmaker[Session],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _market(session_factory)
    assert _report(session_factory).ok
    with session_factory() as s, s.begin():
        s.execute(text("UPDATE samples SET text = 'swapped text' WHERE id = :i"), {"i": ids[2]})
        s.execute(text("UPDATE samples SET provider_id = (SELECT max(id) FROM providers) WHERE id = :i"),
                  {"i": ids[0]})
    middle = "(SELECT id FROM journal_transactions ORDER BY id LIMIT 1 OFFSET 3)"
    bypass_ledger_triggers(engine, f"UPDATE journal_entries SET amount_minor = amount_minor + 1 "
                                   f"WHERE transaction_id = {middle}")
    default = _report(session_factory)
    monkeypatch.setattr(verify, "BODY_BATCH", 1)
    monkeypatch.setattr(priced_catalog, "_CHUNK", 1)
    one = _report(session_factory)
    assert one.violations == default.violations and one.checks == default.checks
    catalog = [v.message for v in default.violations if v.check == "catalog"]
    # The moved sample in both runs; the swapped text once, under the first run that priced it.
    assert sum(f"sample {ids[0]}:" in m and "changed after it was priced" in m for m in catalog) == 2
    assert sum(f"sample {ids[2]}:" in m and "no longer hashes" in m for m in catalog) == 1
    assert len(catalog) == 3
    assert default.checks["body"] == 1
