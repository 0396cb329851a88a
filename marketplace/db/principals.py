"""Who may call the HTTP API: principals (a provider, a buyer or the operator) and their API tokens, and
the idempotency records of their POST requests.

A token is a long random secret shown once when it is issued; only its sha256 is stored
(:mod:`marketplace.principals` issues and checks them), so a copy of the database gives no one a way in.
A principal is never deleted (the audit trail names it): revoking sets ``revoked_at`` on it and on its
tokens. Names are unique per role: a provider principal's name is its provider name, a buyer
principal's name is the buyer name campaigns carry (``campaigns.buyer_name``).
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db.base import Base, UTCDateTime, created_at_column, foreign_id, primary_id, string_enum

__all__ = ["ApiToken", "IdempotencyRecord", "Principal", "PrincipalRole"]


class PrincipalRole(enum.StrEnum):
    PROVIDER = "provider"
    BUYER = "buyer"
    OPERATOR = "operator"


class Principal(Base):
    __tablename__ = "principals"
    __table_args__ = (UniqueConstraint("role", "name"),)

    id: Mapped[int] = primary_id()
    role: Mapped[PrincipalRole] = mapped_column(string_enum(PrincipalRole, "principal_role"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = created_at_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiToken(Base):
    """One API token of a principal: the sha256 of the secret (never the secret), and when it was issued,
    last used and revoked."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = primary_id()
    principal_id: Mapped[int] = foreign_id("principals.id", index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IdempotencyRecord(Base):
    """The first response to a POST with an ``Idempotency-Key``, per principal and key: the same key with
    the same request gets it again, with another request a conflict. ``status_code`` NULL: the first
    request is still running."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("principal_id", "key"),)

    id: Mapped[int] = primary_id()
    principal_id: Mapped[int] = foreign_id("principals.id")
    key: Mapped[str] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
