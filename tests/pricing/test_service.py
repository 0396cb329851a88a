"""The pricing run against the database: eligibility, gaming, guardrails, supersession (both engines)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import (
    DuplicateKind,
    JournalTransaction,
    PricingRun,
    PricingRunStatus,
    RunStatus,
    Sample,
)
from marketplace.db.retry import run_in_transaction
from marketplace.errors import AuditFailedError, NotFoundError, ValidationError
from marketplace.ledger import provider_payable_balance, verify_ledger
from marketplace.pricing import PricingPolicy, allocate_budget
from marketplace.pricing.period import validate_period
from marketplace.pricing.runner import post_until_done, run_pricing
from marketplace.pricing.runs import create_pricing_run
from tests.support.catalog import make_campaign, make_copy_submission, make_provider, make_score_run, make_submission

POLICY = PricingPolicy(screen="none", cap_percentile=100)


def test_copies_across_accounts_earn_nothing_beyond_the_original(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=100_000)
        owner, other, copier1, copier2 = (make_provider(s) for _ in range(4))
        orig, orig_samples = make_submission(s, owner, ["the original a", "the original b", "the original c"])
        _, other_samples = make_submission(s, other, ["someone else's x", "someone else's y"])
        _, copy1 = make_copy_submission(s, copier1, orig, orig_samples)
        _, copy2 = make_copy_submission(s, copier2, orig, orig_samples)
        # A near-duplicate inside an otherwise accepted submission of copier1.
        _, near = make_submission(s, copier1, ["the original a, lightly edited"])
        s.execute(update(Sample).where(Sample.id == near[0].id)
                  .values(duplicate_of_id=orig_samples[0].id, duplicate_kind=DuplicateKind.NEAR))
        everyone = orig_samples + other_samples + copy1 + copy2 + near
        make_score_run(s, camp, {x.id: 10.0 for x in everyone})  # copies scored as high as the original
        ids = {"owner": owner.id, "other": other.id, "c1": copier1.id, "c2": copier2.id, "camp": camp.id}
        eligible = [(x.id, x.submission_id, x.provider_id) for x in orig_samples + other_samples]
    run_pricing(session_factory, ids["camp"], "2026-11", POLICY)
    alone = allocate_budget(100_000, [e[0] for e in eligible], [10.0] * len(eligible),
                            [e[1] for e in eligible], [e[2] for e in eligible], POLICY)
    with session_factory() as s:
        for who in ("c1", "c2"):
            assert provider_payable_balance(s, ids[who], "EUR") == 0
        assert provider_payable_balance(s, ids["owner"], "EUR") == alone.per_provider[ids["owner"]] == 60_000
        assert provider_payable_balance(s, ids["other"], "EUR") == 40_000
        assert verify_ledger(s).ok


def test_splitting_over_accounts_earns_at_most_the_single_account_payout(
    session_factory: sessionmaker[Session],
) -> None:
    """Same scores, one account vs. four: the split total is the single-account total (never more)."""
    scores = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    totals = {}
    for layout in ("single", "split"):
        with session_factory() as s, s.begin():
            camp = make_campaign(s, budget_minor=1_000_001)
            rival = make_provider(s)
            _, rival_samples = make_submission(s, rival, [f"{layout} rival {i}" for i in range(3)])
            accounts = [make_provider(s)] if layout == "single" else [make_provider(s) for _ in range(4)]
            mine = []
            for i in range(4):
                _, xs = make_submission(s, accounts[i % len(accounts)], [f"{layout} mine {i}-{j}" for j in range(2)])
                mine += xs
            make_score_run(s, camp, {x.id: sc for x, sc in zip(mine + rival_samples, [*scores, 2.0, 7.0, 1.0],
                                                                 strict=True)})
            cid, acct_ids = camp.id, [a.id for a in accounts]
        run_pricing(session_factory, cid, "2026-11", POLICY)
        with session_factory() as s:
            totals[layout] = sum(provider_payable_balance(s, a, "EUR") for a in acct_ids)
    assert totals["single"] <= totals["split"] <= totals["single"] + 4
    assert totals["split"] == totals["single"]  # payouts depend on samples only, not on accounts


def test_audit_failure_stops_payouts(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s, audit_threshold=0.6)
        _, xs = make_submission(s, make_provider(s), ["audited text"])
        make_score_run(s, camp, {xs[0].id: 1.0}, audit={"spearman": 0.2})
        cid = camp.id
    with pytest.raises(AuditFailedError, match="payouts are stopped"):
        run_pricing(session_factory, cid, "2026-11", POLICY)
    with session_factory() as s:
        assert s.scalar(select(func.count()).select_from(PricingRun)) == 0


def test_needs_a_complete_score_run(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s)
        _, xs = make_submission(s, make_provider(s), ["only running"])
        make_score_run(s, camp, {xs[0].id: 1.0}, status=RunStatus.RUNNING)
        cid = camp.id
    with pytest.raises(NotFoundError, match="no complete score run"):
        run_pricing(session_factory, cid, "2026-11", POLICY)
    with pytest.raises(NotFoundError, match="campaign 'nope' not found"):
        run_pricing(session_factory, "nope", "2026-11", POLICY)


def test_older_run_resumed_late_is_superseded(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=1000)
        _, xs = make_submission(s, make_provider(s), ["older a", "older b"])
        first = make_score_run(s, camp, {xs[0].id: 1.0, xs[1].id: 1.0})
        second = make_score_run(s, camp, {xs[0].id: 1.0, xs[1].id: 3.0})
        cid, first_id, second_id = camp.id, first.id, second.id
    old, _ = run_in_transaction(session_factory,
                                lambda s: create_pricing_run(s, cid, "2026-11", POLICY, score_run_id=first_id))
    new = run_pricing(session_factory, cid, "2026-11", POLICY, score_run_id=second_id)
    assert new.status == "complete" and new.pricing_run_id > old.id
    posted, superseded_by = post_until_done(session_factory, old.id)
    assert posted == 0 and superseded_by == new.pricing_run_id
    with session_factory() as s:
        assert s.get(PricingRun, old.id).status is PricingRunStatus.SUPERSEDED  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).where(JournalTransaction.pricing_run_id == old.id)) == 0
        assert verify_ledger(s).ok


def test_incomplete_revaluation_is_reported_by_verify(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=1000)
        prov = make_provider(s)
        samples = [make_submission(s, prov, [f"partial {i}"])[1][0] for i in range(3)]
        make_score_run(s, camp, {x.id: 1.0 for x in samples})
        cid = camp.id
    run_pricing(session_factory, cid, "2026-11", POLICY)
    with session_factory() as s, s.begin():
        from marketplace.db import Campaign

        make_score_run(s, s.get(Campaign, cid), {x.id: float(i + 1) for i, x in enumerate(samples)})  # type: ignore[arg-type]

    class Stop(Exception):
        pass

    def stop_after_first(stage: str, n: int) -> None:
        if stage == "committed":
            raise Stop

    with pytest.raises(Stop):
        run_pricing(session_factory, cid, "2026-11", POLICY, batch_size=1, hook=stop_after_first)
    with session_factory() as s:
        report = verify_ledger(s)
    assert report.checks["incomplete_run"] == 1 and report.checks["allocation"] >= 1
    run_pricing(session_factory, cid, "2026-11", POLICY)
    with session_factory() as s:
        assert verify_ledger(s).ok


@pytest.mark.parametrize("bad", ["2026-13", "2026-W47", "26-11", "2026-02-30", ""])
def test_period_validation(bad: str) -> None:
    with pytest.raises(ValidationError, match="YYYY-MM"):
        validate_period(bad)
    assert validate_period("2026-11") == "2026-11" and validate_period("2026-02-28") == "2026-02-28"
