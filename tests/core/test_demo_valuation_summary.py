"""The demo's closing lines on how far to trust the payouts (marketplace.demo.summarise_valuation): the
label count, the held-out Spearman against the baselines, the gate's reason and the audit, all read from
the books of the latest pricing run."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import ApproximatorVersion
from marketplace.demo import summarise_valuation
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission


def test_valuation_summary_reads_the_priced_run(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s, name="demo-valuation", budget_minor=10_000)
        _, xs = make_submission(s, make_provider(s, "p"), ["one text", "two text"])
        run = make_score_run(s, camp, {xs[0].id: 2.0, xs[1].id: 1.0},
                             audit={"passed": True, "spearman": 0.52, "threshold": 0.2, "n": 60})
        version = s.scalar(select(ApproximatorVersion).where(ApproximatorVersion.id == run.approximator_version_id))
        assert version is not None
        version.metrics = {"approx_spearman": 0.43, "tfidf_ridge_spearman": 0.45, "target_cosine_spearman": 0.14,
                           "approx_mean_spread": 0.1}
        version.decision = "no champion yet and held-out Spearman 0.43 clears the floor 0.2"
    run_pricing(session_factory, "demo-valuation", "2026-11", PricingPolicy(screen="none", cap_percentile=100.0))
    with session_factory() as s:
        summary = summarise_valuation(s, "demo-valuation")
    assert summary.n_labels == 10  # the label set behind the run (tests.support's)
    assert summary.heldout == {"approx_spearman": 0.43, "tfidf_ridge_spearman": 0.45, "target_cosine_spearman": 0.14}
    assert summary.gate_decision.startswith("no champion yet") and summary.audit["spearman"] == 0.52
