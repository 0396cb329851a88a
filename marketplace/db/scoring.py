"""Approximator versions, their registry history, score runs and scores (ALinFiK).

Lineage is explicit: a score points at the approximator version that produced it, the version at
the label set it learned from (which carries the target model and data digests and the projection
config hash). MLflow is the registry of record for aliases; ``approximator_events`` keeps our own
append-only account of every registration and alias move with its reason, so "which version was
champion when, and why" is answerable from SQL alone.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db.base import Base, JsonType, UTCDateTime, created_at_column, foreign_id, primary_id
from marketplace.db.valuation import RunStatus, status_column

__all__ = ["ApproximatorEvent", "ApproximatorVersion", "Score", "ScoreRun"]


class ApproximatorVersion(Base):
    """A registered ALinFiK model version (the registry is MLflow; this row is our lineage copy)."""

    __tablename__ = "approximator_versions"
    __table_args__ = (UniqueConstraint("model_name", "version"),)

    id: Mapped[int] = primary_id()
    campaign_id: Mapped[int] = foreign_id("campaigns.id", index=True)
    label_set_id: Mapped[int] = foreign_id("label_sets.id", index=True)
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
    created_at: Mapped[dt.datetime] = created_at_column()


class ApproximatorEvent(Base):
    """Append-only: a version registered, promoted to / demoted from an alias, or kept out by the gate."""

    __tablename__ = "approximator_events"

    id: Mapped[int] = primary_id()
    campaign_id: Mapped[int] = foreign_id("campaigns.id", index=True)
    approximator_version_id: Mapped[int] = foreign_id("approximator_versions.id", index=True)
    action: Mapped[str] = mapped_column(String(20))  # registered | promoted | rejected | demoted
    alias: Mapped[str | None] = mapped_column(String(50), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = created_at_column()


class ScoreRun(Base):
    """One scoring pass of a campaign's pool by one approximator version (incremental: ``n_todo`` is what
    the version had not scored yet). ``audit`` holds the audit's outcome; pricing refuses a failed one."""

    __tablename__ = "score_runs"

    id: Mapped[int] = primary_id()
    status: Mapped[RunStatus] = status_column()
    campaign_id: Mapped[int] = foreign_id("campaigns.id", index=True)
    approximator_version_id: Mapped[int] = foreign_id("approximator_versions.id", index=True)
    resolved_from: Mapped[str] = mapped_column(String(300), default="")  # e.g. models:/alinfik-x@champion
    n_todo: Mapped[int] = mapped_column(Integer, default=0)  # samples this version had not scored yet
    n_scored: Mapped[int] = mapped_column(Integer, default=0)
    audit: Mapped[dict[str, object]] = mapped_column(JsonType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()


class Score(Base):
    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("approximator_version_id", "sample_id"),)

    id: Mapped[int] = primary_id()
    score_run_id: Mapped[int] = foreign_id("score_runs.id", index=True)
    approximator_version_id: Mapped[int] = foreign_id("approximator_versions.id")
    sample_id: Mapped[int] = foreign_id("samples.id", index=True)
    score: Mapped[float] = mapped_column(Float)  # predicted LinFiK (label units)
    score_std: Mapped[float | None] = mapped_column(Float, nullable=True)  # ensemble spread, same units
