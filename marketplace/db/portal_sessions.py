"""Signed-in web portal sessions: one row per browser session, holding only the sha256 of its secret.

The session id travels in an HttpOnly cookie; like an API token, only its hash is stored (the same
:func:`marketplace.principals.hash_token`), so a copy of the database signs no one in. A session
belongs to the API token it was opened with: when that token is rotated away or the principal is
revoked, the session stops working at once (:mod:`marketplace.api.portal.sessions` checks both on every
request). Signing out deletes the row; expired rows are deleted when someone signs in.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db.base import Base, UTCDateTime, created_at_column, foreign_id, primary_id

__all__ = ["PortalSession"]


class PortalSession(Base):
    """One portal session: its principal, the API token it was opened with, the sha256 (hex) of the
    session id and when it expires (UTC)."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = primary_id()
    principal_id: Mapped[int] = foreign_id("principals.id", index=True)
    token_id: Mapped[int] = foreign_id("api_tokens.id", index=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
