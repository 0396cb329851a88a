"""Label sets: exact LinFiK scores on a subsample (the teacher labels).

Lineage is explicit: a score points at the approximator version that produced it, the version at
the label set it learned from, and the label set carries the target model and target data digests
and the projection config hash.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db.base import Base, JsonType, UTCDateTime, created_at_column, foreign_id, primary_id, string_enum

__all__ = ["Label", "LabelSet", "RunStatus", "status_column"]


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


def status_column() -> Mapped[RunStatus]:
    return mapped_column(string_enum(RunStatus, "run_status"), default=RunStatus.RUNNING)


class LabelSet(Base):
    """One labeling run: exact LinFiK for a stratified subsample of a campaign's first-owner samples.

    ``config`` is the full :class:`marketplace.valuation.config.LinFiKConfig` (``config_hash`` its
    hash); ``store_uri`` the run folder (gradient stores, projection, queries); ``lineage`` records
    every checkpoint with its digest and step size, the subsample's data digest and the code version;
    ``stats`` summarises the scores (count, mean, std, quantiles, fraction positive).
    """

    __tablename__ = "label_sets"

    id: Mapped[int] = primary_id()
    campaign_id: Mapped[int] = foreign_id("campaigns.id", index=True)
    config: Mapped[dict[str, object]] = mapped_column(JsonType)
    config_hash: Mapped[str] = mapped_column(String(64))
    projection_seed: Mapped[int] = mapped_column(Integer)
    projection_config_hash: Mapped[str] = mapped_column(String(64))
    target_model_digest: Mapped[str] = mapped_column(String(64))
    target_data_digest: Mapped[str] = mapped_column(String(64))
    store_uri: Mapped[str] = mapped_column(String(2000))
    n_requested: Mapped[int] = mapped_column(Integer)
    n_labeled: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[RunStatus] = status_column()
    lineage: Mapped[dict[str, object]] = mapped_column(JsonType, default=dict)
    stats: Mapped[dict[str, object]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[dt.datetime] = created_at_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("label_set_id", "sample_id"),)

    id: Mapped[int] = primary_id()
    label_set_id: Mapped[int] = foreign_id("label_sets.id", ondelete="CASCADE", index=True)
    sample_id: Mapped[int] = foreign_id("samples.id", index=True)
    score: Mapped[float] = mapped_column(Float)
