"""A tiny priced campaign for the payout-validation tests of the CLI and the flow."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import Campaign, Sample
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_score_run
from tests.support.models import seed_campaign

__all__ = ["seed_scored_campaign"]


def seed_scored_campaign(factory: sessionmaker[Session], model_dir: Path, *, priced: bool,
                         period: str = "2026-10") -> int:
    """Campaign ``tiny`` (three providers, four target texts) scored by made-up values; priced for ``period``
    when ``priced``. Returns the campaign id."""
    with factory() as s, s.begin():
        camp_id = seed_campaign(s, model_dir, per_provider=(5, 4, 3), n_target=4)
        camp = s.get(Campaign, camp_id)
        assert camp is not None
        first = s.scalars(select(Sample.id).where(Sample.duplicate_of_id.is_(None)).order_by(Sample.id)).all()
        make_score_run(s, camp, {sid: float(i % 3) for i, sid in enumerate(first)})
    if priced:
        run_pricing(factory, camp_id, period, PricingPolicy(cap_percentile=100, screen="none"))
    return camp_id
