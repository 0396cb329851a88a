"""web portal sessions

Revision ID: 0009_portal_sessions
Revises: 0008_principals
Create Date: 2026-12-10

- ``portal_sessions``: one signed-in browser session of a principal: the sha256 of its session id (unique;
  the id itself is never stored), the API token it was opened with (a rotated or revoked token ends it),
  when it was created and when it expires. Rows are deleted on sign-out and when they have expired.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import marketplace.db.base

revision: str = "0009_portal_sessions"
down_revision: str | None = "0008_principals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("id", _id(), nullable=False),
        sa.Column("principal_id", _id(), nullable=False),
        sa.Column("token_id", _id(), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", marketplace.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", marketplace.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"],
                                name=op.f("fk_portal_sessions_principal_id_principals"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["token_id"], ["api_tokens.id"],
                                name=op.f("fk_portal_sessions_token_id_api_tokens"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_sessions")),
        sa.UniqueConstraint("session_hash", name=op.f("uq_portal_sessions_session_hash")),
    )
    op.create_index(op.f("ix_portal_sessions_principal_id"), "portal_sessions", ["principal_id"], unique=False)
    op.create_index(op.f("ix_portal_sessions_token_id"), "portal_sessions", ["token_id"], unique=False)
    op.create_index(op.f("ix_portal_sessions_expires_at"), "portal_sessions", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_portal_sessions_expires_at"), table_name="portal_sessions")
    op.drop_index(op.f("ix_portal_sessions_token_id"), table_name="portal_sessions")
    op.drop_index(op.f("ix_portal_sessions_principal_id"), table_name="portal_sessions")
    op.drop_table("portal_sessions")
