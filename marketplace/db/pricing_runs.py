"""The latest complete pricing run of a campaign's period: the one home of "which run is the truth".

A period may be priced many times (revaluation); the books of a (campaign, period) must equal the
allocations of its newest *complete* run (highest id; ids grow with creation on both engines).
``ledger verify``, the provider statements and the buyer report all start from it.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from marketplace.db.ledger import PricingRun, PricingRunStatus

__all__ = ["latest_complete_pricing_runs"]


def latest_complete_pricing_runs(
    session: Session, *, campaign_id: int | None = None, period: str | None = None
) -> list[PricingRun]:
    """The newest complete run of each (campaign, period), optionally of one campaign and/or one period.

    Ordered by campaign id, then period (period labels sort chronologically).
    """
    latest = select(func.max(PricingRun.id)).where(PricingRun.status == PricingRunStatus.COMPLETE)
    if campaign_id is not None:
        latest = latest.where(PricingRun.campaign_id == campaign_id)
    if period is not None:
        latest = latest.where(PricingRun.period == period)
    latest = latest.group_by(PricingRun.campaign_id, PricingRun.period)
    stmt = select(PricingRun).where(PricingRun.id.in_(latest)).order_by(PricingRun.campaign_id, PricingRun.period)
    return list(session.scalars(stmt))
