"""Campaigns: one target model + one target dataset + a budget per period (docs/architecture.md)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db.base import Base, JsonType, created_at_column, foreign_id, primary_id

__all__ = ["Campaign", "TargetSample"]


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("budget_minor >= 0", name="budget_nonneg"),
        CheckConstraint("audit_threshold >= -1 AND audit_threshold <= 1", name="audit_threshold_range"),
    )

    id: Mapped[int] = primary_id()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    target_model_path: Mapped[str] = mapped_column(String(2000))
    target_model_digest: Mapped[str] = mapped_column(String(64))
    target_data_path: Mapped[str] = mapped_column(String(2000))
    target_data_digest: Mapped[str] = mapped_column(String(64))
    budget_minor: Mapped[int] = mapped_column(BigInteger)  # per pricing period
    currency: Mapped[str] = mapped_column(String(3))
    # Minimum Spearman between approximator and exact LinFiK on the audit sample before paying out.
    audit_threshold: Mapped[float] = mapped_column(Float, default=0.5)
    options: Mapped[dict[str, object]] = mapped_column(JsonType, default=dict)
    created_at: Mapped[dt.datetime] = created_at_column()
    # The buyer that owns the campaign (the name of its buyer principal); None: the operator's own.
    buyer_name: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)


class TargetSample(Base):
    """The campaign's target data, normalised like provider samples (never paid, never scored)."""

    __tablename__ = "target_samples"
    __table_args__ = (UniqueConstraint("campaign_id", "record_index"),)

    id: Mapped[int] = primary_id()
    campaign_id: Mapped[int] = foreign_id("campaigns.id", ondelete="CASCADE", index=True)
    record_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    prompt_chars: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
