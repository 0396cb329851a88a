"""Approximator versions, their registry history, score runs and scores (ALinFiK).

Lineage is explicit: a score points at the approximator version that produced it, the version at
the label set it learned from (which carries the target model and data digests and the projection
config hash). MLflow is the registry of record for aliases; ``approximator_events`` keeps our own
append-only account of every registration and alias move with its reason, so "which version was
champion when, and why" is answerable from SQL alone.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db.base import Base, IdType, JsonType, UTCDateTime, utcnow
from marketplace.db.valuation import RunStatus, status_column

__all__ = ["ApproximatorEvent", "ApproximatorVersion", "Score", "ScoreRun"]


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
    mode: Mapped[str] = mapped_column(String(20), default="frozen")  # frozen | finetune
    config_hash: Mapped[str] = mapped_column(String(64), default="")  # ApproxConfig hash
    encoder_digest: Mapped[str] = mapped_column(String(64), default="")
    metrics: Mapped[dict[str, float]] = mapped_column(JsonType, default=dict)
    lineage: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)  # the MLflow lineage tags
    promoted: Mapped[bool] = mapped_column(default=False)  # became champion at registration
    decision: Mapped[str | None] = mapped_column(Text, nullable=True)  # the gate's reason
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApproximatorEvent(Base):
    """Append-only: a version registered, promoted to / demoted from an alias, or kept out by the gate."""

    __tablename__ = "approximator_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="RESTRICT"), index=True)
    approximator_version_id: Mapped[int] = mapped_column(
        ForeignKey("approximator_versions.id", ondelete="RESTRICT"), index=True
    )
    action: Mapped[str] = mapped_column(String(20))  # registered | promoted | rejected | demoted
    alias: Mapped[str | None] = mapped_column(String(50), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ScoreRun(Base):
    __tablename__ = "score_runs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="RESTRICT"), index=True)
    approximator_version_id: Mapped[int] = mapped_column(
        ForeignKey("approximator_versions.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[RunStatus] = status_column()
    resolved_from: Mapped[str] = mapped_column(String(300), default="")  # e.g. models:/alinfik-x@champion
    n_todo: Mapped[int] = mapped_column(Integer, default=0)  # samples this version had not scored yet
    n_scored: Mapped[int] = mapped_column(Integer, default=0)
    audit: Mapped[dict[str, object]] = mapped_column(JsonType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
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
    score: Mapped[float] = mapped_column(Float)  # predicted LinFiK (label units)
    score_std: Mapped[float | None] = mapped_column(Float, nullable=True)  # ensemble spread, same units
