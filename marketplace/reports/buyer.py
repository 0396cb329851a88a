"""The buyer report of a campaign: value by provider and the top-k data selected, with lineage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from marketplace.campaigns import get_campaign
from marketplace.db import Allocation, ApproximatorVersion, Provider, Sample, utcnow
from marketplace.db.pricing_runs import latest_complete_pricing_runs
from marketplace.errors import NotFoundError
from marketplace.pricing.period import validate_period
from marketplace.reports.statements import excerpt

__all__ = ["BuyerReport", "ProviderValue", "SelectedSample", "build_buyer_report"]


@dataclass(frozen=True, slots=True)
class ProviderValue:
    """One provider's share of a pricing run: its samples (and how many were paid), their total value
    (score units) and its allocation (minor units, before the marketplace fee)."""

    provider_id: int
    provider_name: str
    n_samples: int
    n_paid: int
    value_total: float  # score units
    amount_minor: int


@dataclass(frozen=True)
class SelectedSample:
    rank: int
    sample_id: int
    provider_name: str
    excerpt: str
    score: float
    value: float
    amount_minor: int


@dataclass(frozen=True)
class BuyerReport:
    campaign_id: int
    campaign_name: str
    period: str
    currency: str
    pricing_run_id: int
    score_run_id: int
    model_version: str
    label_set_id: int
    policy_hash: str
    budget_minor: int
    allocated_minor: int
    unallocated_minor: int
    providers: list[ProviderValue]
    top_samples: list[SelectedSample]
    values: list[float] = field(default_factory=list)
    generated_at: dt.datetime = field(default_factory=utcnow)


def build_buyer_report(session: Session, campaign: str | int, period: str | None = None, *,
                       top_k: int = 20) -> BuyerReport:
    """From the latest complete pricing run of ``period`` (default: the latest period priced)."""
    camp = get_campaign(session, campaign)
    runs = latest_complete_pricing_runs(session, campaign_id=camp.id,
                                        period=validate_period(period) if period is not None else None)
    run = max(runs, key=lambda r: r.period, default=None)  # period labels sort chronologically
    if run is None:
        raise NotFoundError(f"campaign {camp.name!r} has no complete pricing run"
                            f"{' for ' + period if period else ''}; run `marketplace price {camp.name} --period P`")
    version = session.get(ApproximatorVersion, run.approximator_version_id)
    rows = session.execute(
        select(Allocation.provider_id, Provider.name, func.count(), func.sum(Allocation.value),
               func.sum(Allocation.amount_minor))
        .join(Provider, Provider.id == Allocation.provider_id)
        .where(Allocation.pricing_run_id == run.id)
        .group_by(Allocation.provider_id, Provider.name)
    ).all()
    paid: dict[int, int] = {int(pid): int(n) for pid, n in session.execute(
        select(Allocation.provider_id, func.count())
        .where(Allocation.pricing_run_id == run.id, Allocation.amount_minor > 0)
        .group_by(Allocation.provider_id)
    )}
    providers = sorted(
        (ProviderValue(int(pid), name, int(n), int(paid.get(pid, 0)), float(v or 0.0), int(a or 0))
         for pid, name, n, v, a in rows),
        key=lambda p: (-p.amount_minor, p.provider_id),
    )
    top = session.execute(
        select(Allocation, Provider.name, Sample.text)
        .join(Provider, Provider.id == Allocation.provider_id)
        .join(Sample, Sample.id == Allocation.sample_id)
        .where(Allocation.pricing_run_id == run.id)
        .order_by(Allocation.value.desc(), Allocation.sample_id)
        .limit(top_k)
    ).all()
    values = [float(v) for v in session.scalars(select(Allocation.value).where(Allocation.pricing_run_id == run.id))]
    return BuyerReport(
        campaign_id=camp.id, campaign_name=camp.name, period=run.period, currency=run.currency,
        pricing_run_id=run.id, score_run_id=run.score_run_id,
        model_version=f"{version.model_name}:{version.version}" if version else str(run.approximator_version_id),
        label_set_id=run.label_set_id, policy_hash=run.policy_hash, budget_minor=run.budget_minor,
        allocated_minor=run.allocated_minor, unallocated_minor=run.unallocated_minor, providers=providers,
        top_samples=[SelectedSample(i + 1, a.sample_id, name, excerpt(text), a.score, a.value, a.amount_minor)
                     for i, (a, name, text) in enumerate(top)],
        values=values,
    )
