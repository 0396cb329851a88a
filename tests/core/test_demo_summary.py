"""The demo's closing summary (marketplace.demo.summarise_providers) and its sizes."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from marketplace.demo import DEMO_SIZES, summarise_providers
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_copy_submission, make_provider, make_score_run, make_submission


def test_summary_rows_follow_the_books(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s, name="demo-summary", budget_minor=100_000)
        good, noisy, copycat = (make_provider(s, n) for n in ("good", "noisy", "copycat"))
        sub_g, xg = make_submission(s, good, ["relevant one", "relevant two", "relevant three"])
        _, xn = make_submission(s, noisy, ["zq xv", "vq zx"])
        _, xc = make_copy_submission(s, copycat, sub_g, xg)
        sub_g.n_records, sub_g.n_quarantined = 5, 2  # two records of its file were quarantined
        # Duplicates are scored too (scoring covers every accepted sample); pricing pays first owners only.
        scores = {xg[0].id: 3.0, xg[1].id: 2.0, xg[2].id: 0.0, xn[0].id: 1.0, xn[1].id: -4.0,
                  **{x.id: 3.0 for x in xc}}
        make_score_run(s, camp, scores)
    run_pricing(session_factory, "demo-summary", "2026-11", PricingPolicy(screen="none", cap_percentile=100.0,
                                                                             netting="sample"))

    with session_factory() as s:
        rows = summarise_providers(s, "demo-summary", "2026-11")
    by = {r.provider: r for r in rows}
    assert [r.provider for r in rows] == ["good", "noisy", "copycat"]  # by payout, highest first
    assert (by["good"].samples, by["good"].duplicates, by["good"].quarantined) == (3, 0, 2)
    assert (by["copycat"].samples, by["copycat"].duplicates, by["copycat"].payout_minor) == (3, 3, 0)
    # value 5 of 6 (negative scores are worth nothing): 83,333.3 and 16,666.7; the leftover unit goes to the
    # larger remainder
    assert (by["good"].payout_minor, by["noisy"].payout_minor) == (83_333, 16_667)
    assert abs(by["good"].value_share - 5 / 6) < 1e-12 and by["copycat"].value_share == 0.0
    assert sum(r.payout_minor for r in rows) == 100_000
    assert by["good"].payout == "833.33 EUR"


def test_demo_sizes_share_the_target_model_and_label_token_weighted() -> None:
    from marketplace.valuation import LinFiKConfig

    small, default = DEMO_SIZES["small"], DEMO_SIZES["default"]
    assert small.model_train_steps == default.model_train_steps  # one model build serves both
    assert default.n_labels >= 2000 and small.n_labels < default.n_labels
    for size in (small, default):
        config = LinFiKConfig.model_validate(dict(size.label_config))
        assert config.weighting == "token" and config.preconditioner == LinFiKConfig().preconditioner
