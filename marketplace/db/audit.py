"""The audit trail: who did what to the ownership of texts and money, appended in the same transaction.

Every core function that changes who owns or earns something writes one :class:`AuditEvent` beside the
change, in the caller's transaction (so the event exists exactly when the change does):

- ``ingested`` (:func:`marketplace.ingest.ingest.ingest_file`: a new submission or a copy),
- ``campaign_created`` (:func:`marketplace.campaigns.create_campaign`),
- ``priced`` / ``revalued`` (:func:`marketplace.pricing.runs.create_pricing_run`: the first pricing run of a
  period, or a later one that replaces what was paid),
- ``promoted`` (:func:`marketplace.approx.publish.promote_version` and an automatic promotion recorded
  by :func:`marketplace.approx.publish.record_publication`).

The database itself adds ``catalog_changed`` and ``campaign_changed`` events when a statement outside
those functions rewrites an ownership column of ``samples`` or ``submissions``, or a campaign row
(triggers of migration ``0007_audit_trail``; the actor is the database user on PostgreSQL, ``database``
on SQLite). The table is append-only on both engines: UPDATE, DELETE, REPLACE (and TRUNCATE) are
refused by triggers of the same migration.

The actor is the principal string the caller passes (a service account, an operator's name), else
:func:`current_actor`: the operating-system user the process runs as.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from typing import Any

from sqlalchemy import Index, String, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from marketplace.db.base import Base, IdType, JsonType, created_at_column, primary_id, utcnow

__all__ = ["AUDIT_ACTIONS", "AuditEvent", "current_actor", "list_audit_events", "record_audit"]

AUDIT_ACTIONS = ("ingested", "campaign_created", "campaign_changed", "catalog_changed", "priced", "revalued",
                 "promoted", "principal_created", "principal_revoked", "token_rotated", "revalue_requested")
_MAX_ACTOR = 200


class AuditEvent(Base):
    """One append-only event. The subject columns are plain ids, not foreign keys: the trail must outlive
    and never block the rows it talks about."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_campaign_id", "campaign_id"),
                      Index("ix_audit_events_submission_id", "submission_id"))

    id: Mapped[int] = primary_id()
    occurred_at: Mapped[dt.datetime] = created_at_column()
    actor: Mapped[str] = mapped_column(String(_MAX_ACTOR))
    action: Mapped[str] = mapped_column(String(40))
    campaign_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    provider_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    submission_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    pricing_run_id: Mapped[int | None] = mapped_column(IdType, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


def current_actor() -> str:
    """Who is acting when the caller does not say: the operating-system user (its login name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _clean_actor(actor: str | None) -> str:
    """The actor as stored: one printable line of at most 200 characters."""
    text = (actor if actor is not None and actor.strip() else current_actor()).strip()
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:_MAX_ACTOR]


def record_audit(session: Session, action: str, *, actor: str | None = None, campaign_id: int | None = None,
                 provider_id: int | None = None, submission_id: int | None = None,
                 pricing_run_id: int | None = None, **details: Any) -> None:
    """Append one event in the caller's transaction (nothing is committed here)."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; one of {', '.join(AUDIT_ACTIONS)}")
    session.execute(insert(AuditEvent).values(
        occurred_at=utcnow(), actor=_clean_actor(actor), action=action, campaign_id=campaign_id,
        provider_id=provider_id, submission_id=submission_id, pricing_run_id=pricing_run_id,
        details={k: v for k, v in details.items() if v is not None},
    ))


def list_audit_events(session: Session, *, limit: int = 100, campaign_id: int | None = None,
                      provider_id: int | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` events (optionally of one campaign or provider), newest first, as plain dicts."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, 10_000)))
    if campaign_id is not None:
        stmt = stmt.where(AuditEvent.campaign_id == campaign_id)
    if provider_id is not None:
        stmt = stmt.where(AuditEvent.provider_id == provider_id)
    return [{"id": e.id, "occurred_at": e.occurred_at.isoformat(), "actor": e.actor, "action": e.action,
             "campaign_id": e.campaign_id, "provider_id": e.provider_id, "submission_id": e.submission_id,
             "pricing_run_id": e.pricing_run_id, "details": dict(e.details or {})}
            for e in session.scalars(stmt)]
