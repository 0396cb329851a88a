"""A label set's record: the summary every labeling step returns, its description, its failure.

The :class:`~marketplace.db.LabelSet` row is the bookkeeping of a labeling run (status, counts,
statistics, lineage); :class:`LabelRunSummary` is the plain-value copy the flows and the CLI pass on.
Sessions: the caller owns them; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from marketplace.db import LabelSet, RunStatus
from marketplace.errors import NotFoundError

__all__ = ["LabelRunSummary", "describe_label_set", "get_label_set", "mark_label_set_failed", "summary_of"]


@dataclass(frozen=True)
class LabelRunSummary:
    """A label set as plain values; the last five fields describe the call that returned it."""

    label_set_id: int
    campaign_id: int
    status: str
    n_requested: int
    n_labeled: int
    config_hash: str
    target_model_digest: str
    target_data_digest: str
    projection_seed: int
    store_uri: str  # the run folder
    stats: dict[str, Any]  # score statistics (see marketplace.valuation.scoring)
    reused: bool = False  # the request was already complete: nothing was computed
    shards_computed: int = 0
    shards_skipped: int = 0  # already complete on disk (a resumed run)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # :func:`describe_label_set`: config and lineage


def summary_of(label_set: LabelSet, **call: Any) -> LabelRunSummary:
    """The summary of a label set row; ``call`` sets the fields that describe this call."""
    return LabelRunSummary(
        label_set_id=label_set.id, campaign_id=label_set.campaign_id, status=str(label_set.status),
        n_requested=label_set.n_requested, n_labeled=label_set.n_labeled, config_hash=label_set.config_hash,
        target_model_digest=label_set.target_model_digest, target_data_digest=label_set.target_data_digest,
        projection_seed=label_set.projection_seed, store_uri=label_set.store_uri, stats=dict(label_set.stats),
        **call,
    )


def get_label_set(session: Session, label_set_id: int) -> LabelSet:
    """The label set row, or a NotFoundError that says where to look."""
    label_set = session.get(LabelSet, label_set_id)
    if label_set is None:
        raise NotFoundError(f"label set {label_set_id} does not exist; list them with `marketplace labels list`")
    return label_set


def describe_label_set(session: Session, label_set_id: int) -> LabelRunSummary:
    """The summary with the configuration, lineage and timestamps (``extra``)."""
    label_set = get_label_set(session, label_set_id)
    return summary_of(label_set, extra={"config": label_set.config, "lineage": label_set.lineage,
                                        "created_at": label_set.created_at.isoformat(),
                                        "finished_at": label_set.finished_at.isoformat()
                                        if label_set.finished_at else None})


def mark_label_set_failed(session: Session, label_set_id: int, reason: str) -> None:
    """Record that a run stopped (its stores stay on disk: rerunning the same request resumes it).
    A complete label set, or a missing one, is left as it is."""
    label_set = session.get(LabelSet, label_set_id)
    if label_set is None or label_set.status == RunStatus.COMPLETE:
        return
    label_set.status = RunStatus.FAILED
    label_set.stats = {**label_set.stats, "error": reason[:2000]}
    session.flush()
