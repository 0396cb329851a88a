"""Planning a scheduled revaluation: which stages must run again, and which can be reused.

Revaluation (docs/architecture.md) is ingest-new → label → train → score → price. Labeling and training are
the expensive stages, and they only need to run again when the pool changed or nothing reusable
exists; scoring is incremental and pricing is idempotent per score run, so both always run.

The rules, in order:
1. no complete label set for the campaign → label and train;
2. first-owner samples were accepted after the latest complete label set was created → label and train
   (the subsample must be able to include the new data);
3. the run asks for a LinFiK configuration (``label_config_hash``) other than the latest label set's →
   label and train (a changed deployment parameter takes effect at the next run; with none asked for,
   the label flow relabels with the latest label set's configuration, reported as ``latest_label_config``);
4. no approximator version was ever promoted to champion for the campaign → train;
5. otherwise reuse the latest label set and the current champion.
``force`` relabels and retrains regardless.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from marketplace.campaigns import get_campaign
from marketplace.db import ApproximatorVersion, Sample, Submission
from marketplace.db.eligibility import is_payable
from marketplace.db.label_sets import latest_complete_label_set

__all__ = ["RevaluationPlan", "current_period", "plan_revaluation"]


@dataclass(frozen=True)
class RevaluationPlan:
    campaign_id: int
    campaign_name: str
    relabel: bool
    retrain: bool
    reason: str
    latest_label_set_id: int | None
    new_samples_since_labels: int
    latest_label_config: dict[str, object] | None = None  # the LinFiK config of that label set


def current_period(now: dt.datetime | None = None) -> str:
    """The pricing period a scheduled run prices by default: the current UTC month, ``YYYY-MM``."""
    moment = now or dt.datetime.now(dt.UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def plan_revaluation(
    session: Session, campaign: str | int, *, force: bool = False, label_config_hash: str | None = None
) -> RevaluationPlan:
    """``label_config_hash``: ``LinFiKConfig.config_hash()`` of the configuration this run labels with,
    None to keep the latest label set's."""
    c = get_campaign(session, campaign)
    latest = latest_complete_label_set(session, c.id)
    new_samples = 0
    if latest is not None:
        new_samples = int(
            session.scalar(
                select(func.count())
                .select_from(Sample)
                .join(Submission, Submission.id == Sample.submission_id)
                .where(is_payable(), Sample.created_at > latest.created_at)  # what labeling may draw
            )
            or 0
        )
    has_champion = (
        session.scalar(
            select(func.count())
            .select_from(ApproximatorVersion)
            .where(ApproximatorVersion.campaign_id == c.id, ApproximatorVersion.promoted.is_(True))
        )
        or 0
    ) > 0

    if force:
        relabel, retrain, reason = True, True, "forced"
    elif latest is None:
        relabel, retrain, reason = True, True, "no complete label set yet"
    elif new_samples > 0:
        relabel, retrain, reason = True, True, f"{new_samples} new first-owner samples since label set {latest.id}"
    elif label_config_hash is not None and label_config_hash != latest.config_hash:
        relabel, retrain, reason = True, True, (
            f"label configuration changed: label set {latest.id} has {latest.config_hash[:12]}, this run asks for "
            f"{label_config_hash[:12]}"
        )
    elif not has_champion:
        relabel, retrain, reason = False, True, "no champion approximator yet"
    else:
        relabel, retrain, reason = False, False, f"pool unchanged since label set {latest.id}; champion reused"
    return RevaluationPlan(
        campaign_id=c.id,
        campaign_name=c.name,
        relabel=relabel,
        retrain=retrain,
        reason=reason,
        latest_label_set_id=None if latest is None else latest.id,
        new_samples_since_labels=new_samples,
        latest_label_config=None if latest is None else dict(latest.config),
    )
