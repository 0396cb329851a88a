"""The latest complete label set of a campaign: the one home of that rule.

Training, revaluation, labeling (query reuse) and the label flow's "keep the latest configuration"
all start from it. A label set counts once it is ``complete``; a running or failed one never does.
Newest means the highest id (ids grow with creation on both engines).
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from marketplace.db.valuation import LabelSet, RunStatus
from marketplace.errors import NotFoundError

__all__ = ["complete_label_sets", "latest_complete_label_set", "require_latest_label_set"]


def latest_complete_label_set(
    session: Session, campaign_id: int, *, config_hash: str | None = None
) -> LabelSet | None:
    """The campaign's newest complete label set (with ``config_hash`` when given), or None."""
    return session.scalar(_newest_complete_first(campaign_id, config_hash).limit(1))


def complete_label_sets(session: Session, campaign_id: int, *, config_hash: str | None = None) -> list[LabelSet]:
    """Every complete label set of the campaign (with ``config_hash`` when given), newest first: for a
    caller that falls back to an older one when the newest lacks something on disk."""
    return list(session.scalars(_newest_complete_first(campaign_id, config_hash)))


def _newest_complete_first(campaign_id: int, config_hash: str | None) -> Select[tuple[LabelSet]]:
    stmt = select(LabelSet).where(LabelSet.campaign_id == campaign_id, LabelSet.status == RunStatus.COMPLETE)
    if config_hash is not None:
        stmt = stmt.where(LabelSet.config_hash == config_hash)
    return stmt.order_by(LabelSet.id.desc())


def require_latest_label_set(session: Session, campaign_id: int) -> LabelSet:
    """:func:`latest_complete_label_set`, or a :class:`NotFoundError` that says how to make one."""
    found = latest_complete_label_set(session, campaign_id)
    if found is None:
        raise NotFoundError(
            f"campaign {campaign_id} has no complete label set; run `marketplace label CAMPAIGN --n N` first"
        )
    return found
