"""principals, API tokens and idempotency records; the campaign's owning buyer

Revision ID: 0008_principals
Revises: 0007_audit_trail
Create Date: 2026-12-08

- ``principals``: who may call the HTTP API (role provider, buyer or operator; a name unique per role);
  never deleted, revoked by ``revoked_at``.
- ``api_tokens``: the sha256 of each token's secret (unique), with issued, last-used and revoked times.
- ``idempotency_records``: the first response to a POST per principal and ``Idempotency-Key``.
- ``campaigns.buyer_name``: the buyer that owns the campaign (NULL: the operator's own). The campaign
  audit trigger of 0007 now also records a change of the owner.
The SQL is inlined here on purpose: a migration must not change when the package changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import marketplace.db.base

revision: str = "0008_principals"
down_revision: str | None = "0007_audit_trail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_COLUMNS = ["name", "target_model_path", "target_model_digest", "target_data_path", "target_data_digest",
                "budget_minor", "currency", "audit_threshold", "options", "created_at"]
_NEW_COLUMNS = [*_OLD_COLUMNS, "buyer_name"]
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4, 3) || '000'"


def _sqlite_campaign_trigger(columns: list[str]) -> str:
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in columns)
    pairs = ", ".join(f"'{c}', CASE WHEN NEW.{c} IS NOT OLD.{c} THEN json_array(OLD.{c}, NEW.{c}) END"
                      for c in columns)
    return f"""CREATE TRIGGER campaigns_audit_change AFTER UPDATE ON campaigns
WHEN {changed}
BEGIN
    INSERT INTO audit_events (occurred_at, actor, action, campaign_id, details)
    VALUES ({_SQLITE_NOW}, 'database', 'campaign_changed', NEW.id,
            json_object('table', 'campaigns', {pairs}));
END"""


def _pg_campaign_function(columns: list[str]) -> str:
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in columns)
    changes = " || ".join(f"CASE WHEN NEW.{c} IS DISTINCT FROM OLD.{c} THEN jsonb_build_object('{c}', "
                          f"jsonb_build_array(to_jsonb(OLD.{c}), to_jsonb(NEW.{c}))) ELSE '{{}}'::jsonb END"
                          for c in columns)
    return f"""
CREATE OR REPLACE FUNCTION audit_campaign_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {changed} THEN
        INSERT INTO audit_events (occurred_at, actor, action, campaign_id, details)
        VALUES (now(), current_user, 'campaign_changed', NEW.id,
                jsonb_build_object('table', 'campaigns') || {changes});
    END IF;
    RETURN NULL;
END $$
"""


def _campaign_trigger(columns: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_campaign_function(columns))
    else:
        op.execute("DROP TRIGGER IF EXISTS campaigns_audit_change")
        op.execute(_sqlite_campaign_trigger(columns))


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("id", _id(), nullable=False),
        sa.Column("role", sa.Enum("provider", "buyer", "operator", name="principal_role", native_enum=False,
                                  length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", marketplace.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", marketplace.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principals")),
        sa.UniqueConstraint("role", "name", name=op.f("uq_principals_role_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", _id(), nullable=False),
        sa.Column("principal_id", _id(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", marketplace.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", marketplace.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", marketplace.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"], name=op.f("fk_api_tokens_principal_id_principals"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_principal_id"), "api_tokens", ["principal_id"], unique=False)
    op.create_table(
        "idempotency_records",
        sa.Column("id", _id(), nullable=False),
        sa.Column("principal_id", _id(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at", marketplace.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", marketplace.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["principal_id"], ["principals.id"],
                                name=op.f("fk_idempotency_records_principal_id_principals"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_records")),
        sa.UniqueConstraint("principal_id", "key", name=op.f("uq_idempotency_records_principal_id_key")),
    )
    op.add_column("campaigns", sa.Column("buyer_name", sa.String(length=200), nullable=True))
    op.create_index(op.f("ix_campaigns_buyer_name"), "campaigns", ["buyer_name"], unique=False)
    _campaign_trigger(_NEW_COLUMNS)


def downgrade() -> None:
    _campaign_trigger(_OLD_COLUMNS)  # before the column goes: SQLite refuses to drop a column a trigger uses
    op.drop_index(op.f("ix_campaigns_buyer_name"), table_name="campaigns")
    op.drop_column("campaigns", "buyer_name")
    op.drop_table("idempotency_records")
    op.drop_index(op.f("ix_api_tokens_principal_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("principals")
