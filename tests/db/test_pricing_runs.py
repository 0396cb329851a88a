"""The latest complete pricing run of each (campaign, period) (marketplace.db.pricing_runs), both engines."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import PricingRun, PricingRunStatus
from marketplace.db.pricing_runs import latest_complete_pricing_runs
from marketplace.db.retry import run_in_transaction
from marketplace.pricing.runner import run_pricing
from marketplace.pricing.runs import create_pricing_run
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission


def test_newest_complete_run_per_campaign_and_period(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        a, b = make_campaign(s, budget_minor=1000), make_campaign(s, budget_minor=1000)
        prov = make_provider(s)
        _, samples = make_submission(s, prov, ["some text one", "some text two"])
        first_a = make_score_run(s, a, {x.id: 1.0 for x in samples}).id
        second_a = make_score_run(s, a, {x.id: float(i + 1) for i, x in enumerate(samples)}).id
        make_score_run(s, b, {x.id: 1.0 for x in samples})
        ids = {"a": a.id, "b": b.id}

    october = run_pricing(session_factory, ids["a"], "2026-10", score_run_id=first_a).pricing_run_id
    old_nov = run_pricing(session_factory, ids["a"], "2026-11", score_run_id=first_a).pricing_run_id
    new_nov = run_pricing(session_factory, ids["a"], "2026-11", score_run_id=second_a).pricing_run_id
    b_nov = run_pricing(session_factory, ids["b"], "2026-11").pricing_run_id
    # Allocated but never posted: newer, yet not the truth of its period.
    pending, _ = run_in_transaction(session_factory, lambda s: create_pricing_run(s, ids["a"], "2026-11",
                                                                                 {"fee_bps": 7}))
    assert pending.status is PricingRunStatus.ALLOCATED

    with session_factory() as s:
        def ids_of(runs: list[PricingRun]) -> list[int]:
            return [r.id for r in runs]

        assert old_nov < new_nov < pending.id
        assert ids_of(latest_complete_pricing_runs(s)) == [october, new_nov, b_nov]
        assert ids_of(latest_complete_pricing_runs(s, campaign_id=ids["a"])) == [october, new_nov]
        assert ids_of(latest_complete_pricing_runs(s, period="2026-11")) == [new_nov, b_nov]
        assert ids_of(latest_complete_pricing_runs(s, campaign_id=ids["b"], period="2026-10")) == []
