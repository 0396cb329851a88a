"""Approximator versions, score runs and scores (ALinFiK).

Lineage is explicit: a score points at the approximator version that produced it, the version at
the label set it learned from (which carries the target model and data digests and the projection
config hash).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db.base import Base, IdType, JsonType, UTCDateTime, utcnow
from marketplace.db.valuation import RunStatus, status_column

__all__ = ["ApproximatorVersion", "Score", "ScoreRun"]


class ApproximatorVersion(Base):
    """A registered ALinFiK model version (the registry is MLflow; this row is our lineage copy)."""

    __tablename__ = "approximator_versions"
    __table_args__ = (UniqueConstraint("model_name", "version"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="RESTRICT"), index=True)
    label_set_id: Mapped[int] = mapped_column(ForeignKey("label_sets.id", ondelete="RESTRICT"), index=True)
    model_name: Mapped[str] = mapped_column(String(300))
    version: Mapped[str] = mapped_column(String(50))
    model_uri: Mapped[str] = mapped_column(String(2000))
    mlflow_run_id: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, float]] = mapped_column(JsonType, default=dict)
    promoted: Mapped[bool] = mapped_column(default=False)
    decision: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ScoreRun(Base):
    __tablename__ = "score_runs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="RESTRICT"), index=True)
    approximator_version_id: Mapped[int] = mapped_column(
        ForeignKey("approximator_versions.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[RunStatus] = status_column()
    n_scored: Mapped[int] = mapped_column(Integer, default=0)
    audit: Mapped[dict[str, object]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Score(Base):
    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("approximator_version_id", "sample_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    score_run_id: Mapped[int] = mapped_column(ForeignKey("score_runs.id", ondelete="RESTRICT"), index=True)
    approximator_version_id: Mapped[int] = mapped_column(
        ForeignKey("approximator_versions.id", ondelete="RESTRICT")
    )
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="RESTRICT"), index=True)
    score: Mapped[float] = mapped_column(Float)
