"""The buyer report of a campaign: value by provider and the top-k data selected, with lineage, the
approximator's held-out agreement against its baselines, the audit, and the providers paid nothing with
the reason.

The top samples are ranked by score (highest first; equal scores by sample id), not by the capped
value: capped samples all have the same value, and ordering them by id would put a lower score
above a higher one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from marketplace.campaigns import get_campaign
from marketplace.db import Allocation, ApproximatorVersion, Provider, Sample, Submission, utcnow
from marketplace.db.eligibility import is_first_owner
from marketplace.db.pricing_runs import latest_complete_pricing_runs
from marketplace.db.scoring import ScoreRun
from marketplace.db.screening import failed_check_reason, failed_checks
from marketplace.db.valuation import LabelSet
from marketplace.errors import NotFoundError
from marketplace.pricing.period import validate_period
from marketplace.reports.statements import allocation_values, excerpt

__all__ = ["HELDOUT_METRICS", "BuyerReport", "ProviderValue", "SelectedSample", "UnpaidProvider",
           "build_buyer_report", "priced_periods"]

# The held-out agreement the approximator is judged by, and the baselines it must beat (labels' units).
HELDOUT_METRICS = {
    "approx_spearman": "ALinFiK (the approximator)",
    "tfidf_ridge_spearman": "baseline: TF-IDF + ridge",
    "target_cosine_spearman": "baseline: cosine to the target data",
}


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
class UnpaidProvider:
    """A provider in the market that this pricing run pays nothing, and why (one sentence)."""

    provider_id: int
    provider_name: str
    n_samples: int
    reason: str


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
    n_labels: int = 0  # exact labels the approximator was trained on
    heldout: dict[str, float] = field(default_factory=dict)  # HELDOUT_METRICS present on the version
    gate_decision: str = ""  # the promotion gate's reason for the version that scored
    audit: dict[str, object] = field(default_factory=dict)  # ScoreRun.audit: n, spearman, threshold, passed
    unpaid: list[UnpaidProvider] = field(default_factory=list)


def build_buyer_report(session: Session, campaign: str | int, period: str | None = None, *,
                       top_k: int = 20) -> BuyerReport:
    """From the latest complete pricing run of ``period`` (default: the latest period priced)."""
    camp = get_campaign(session, campaign)
    runs = latest_complete_pricing_runs(session, campaign_id=camp.id,
                                        period=validate_period(period) if period is not None else None)
    run = max(runs, key=lambda r: r.period, default=None)  # period labels sort chronologically
    if run is None:
        have = priced_periods(session, camp.id)
        hint = (f"it was priced for {', '.join(have)} (pass one with --period, or leave --period out)" if have
                else f"run `marketplace price {camp.name}` first")
        raise NotFoundError(f"campaign {camp.name!r} has no complete pricing run"
                            f"{' for ' + period if period else ''}; {hint}")
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
        .order_by(Allocation.score.desc(), Allocation.sample_id)
        .limit(top_k)
    ).all()
    values = allocation_values(session, Allocation.pricing_run_id == run.id)
    score_run = session.get(ScoreRun, run.score_run_id)
    label_set = session.get(LabelSet, run.label_set_id)
    return BuyerReport(
        campaign_id=camp.id, campaign_name=camp.name, period=run.period, currency=run.currency,
        pricing_run_id=run.id, score_run_id=run.score_run_id,
        model_version=f"{version.model_name}:{version.version}" if version else str(run.approximator_version_id),
        label_set_id=run.label_set_id, policy_hash=run.policy_hash, budget_minor=run.budget_minor,
        allocated_minor=run.allocated_minor, unallocated_minor=run.unallocated_minor, providers=providers,
        top_samples=[SelectedSample(i + 1, a.sample_id, name, excerpt(text), a.score, a.value, a.amount_minor)
                     for i, (a, name, text) in enumerate(top)],
        values=values,
        n_labels=int(label_set.n_labeled) if label_set else 0,
        heldout={k: float(version.metrics[k]) for k in HELDOUT_METRICS if version and k in (version.metrics or {})},
        gate_decision=(version.decision or "") if version else "",
        audit=dict(score_run.audit or {}) if score_run else {},
        unpaid=_unpaid(session, {p.provider_id: p for p in providers}, run.screening),
    )


def priced_periods(session: Session, campaign_id: int) -> list[str]:
    """The periods of the campaign's complete pricing runs, oldest first."""
    return sorted({r.period for r in latest_complete_pricing_runs(session, campaign_id=campaign_id)})


def _unpaid(session: Session, priced: dict[int, ProviderValue],
            screening: dict[str, Any] | None = None) -> list[UnpaidProvider]:
    """Every provider with submissions that the run pays nothing, with the reason: all its records were
    already in the market (copies), none was accepted, its data did not pass the run's fine-tuning check
    (``screening``, :mod:`marketplace.validation.screening`), none was scored in this run, or every value
    was at or below zero. Counts and the provider's own measured gain only: no other provider's data."""
    failed = failed_checks(screening)
    counts = {
        int(pid): (int(n), int(first or 0))
        for pid, n, first in session.execute(
            select(Sample.provider_id, func.count(), func.sum(case((is_first_owner(), 1), else_=0)))
            .group_by(Sample.provider_id))
    }
    out = []
    for pid, name in session.execute(
            select(Provider.id, Provider.name).where(Provider.id.in_(select(Submission.provider_id)))
            .order_by(Provider.id)):
        pv = priced.get(int(pid))
        if pv is not None and pv.amount_minor > 0:
            continue
        n, first = counts.get(int(pid), (0, 0))
        if n == 0:
            reason = "no record was accepted (see `marketplace submissions list`)"
        elif first == 0:
            reason = f"all {n} records were already in the market (copies of earlier submissions are not paid)"
        elif int(pid) in failed:
            reason = failed_check_reason(failed[int(pid)])
        elif pv is None:
            reason = "its samples were not part of this pricing run (submitted after the scoring it prices)"
        elif pv.value_total > 0:
            reason = "its share of the value comes to less than one minor unit of the budget"
        else:
            reason = (f"its {pv.n_samples} samples are valued at or below zero: by the approximator they would "
                      "not lower the target model's loss on the target data")
        out.append(UnpaidProvider(int(pid), name, n, reason))
    return out
