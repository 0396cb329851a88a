"""the audit trail (append-only) and the priced samples' ownership fingerprints

Revision ID: 0007_audit_trail
Revises: 0006_books_hardening
Create Date: 2026-12-06

- ``audit_events``: who ingested, priced, revalued, promoted, created or changed what (written by the
  core functions in the same transaction as the change; see marketplace/db/audit.py). Append-only on
  both engines: UPDATE and DELETE are refused by triggers, REPLACE / INSERT OR REPLACE (SQLite) by a
  BEFORE INSERT trigger refusing a reused id, TRUNCATE (PostgreSQL) by a statement trigger;
  ``INSERT ... ON CONFLICT DO UPDATE`` fires the UPDATE trigger and is refused too.
- Triggers that append a ``catalog_changed`` event when a statement rewrites an ownership column of
  ``samples`` (provider, submission, text, content hash, duplicate link) or ``submissions`` (provider,
  status, copy link, content hash), and a ``campaign_changed`` event for any UPDATE of a campaign. The
  actor is the database user on PostgreSQL, ``database`` on SQLite.
- ``allocations.catalog_sha256``: the priced sample's ownership fingerprint at pricing time
  (marketplace/db/priced_catalog.py), checked by ``ledger verify``. Rows priced before stay NULL.
The SQL is inlined here on purpose: a migration must not change when the package changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import marketplace.db.base

revision: str = "0007_audit_trail"
down_revision: str | None = "0006_books_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSE = "the audit trail is append-only"
_SAMPLE_COLUMNS = ["provider_id", "submission_id", "text", "content_hash", "duplicate_of_id", "duplicate_kind"]
_SUBMISSION_COLUMNS = ["provider_id", "status", "copy_of_submission_id", "content_sha256"]
_CAMPAIGN_COLUMNS = ["name", "target_model_path", "target_model_digest", "target_data_path", "target_data_digest",
                     "budget_minor", "currency", "audit_threshold", "options", "created_at"]

# SQLite stores UTCDateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC).
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4, 3) || '000'"


def _sqlite_changed(columns: list[str]) -> str:
    return " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in columns)


def _sqlite_json_pairs(columns: list[str]) -> str:
    """json_object arguments listing the old and new value of every column that changed."""
    return ", ".join(f"'{c}', CASE WHEN NEW.{c} IS NOT OLD.{c} THEN json_array(OLD.{c}, NEW.{c}) END"
                     for c in columns if c != "text")


SQLITE_TRIGGERS = [
    *(f"CREATE TRIGGER audit_events_no_{what.lower()} BEFORE {what} ON audit_events BEGIN "
      f"SELECT RAISE(ABORT, 'audit: {what} on audit_events is refused: {_REFUSE}'); END"
      for what in ("UPDATE", "DELETE")),
    "CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events "
    "WHEN EXISTS (SELECT 1 FROM audit_events t WHERE t.id = NEW.id) BEGIN "
    f"SELECT RAISE(ABORT, 'audit: INSERT reusing the id of an existing audit_events row is refused: {_REFUSE}'); END",
    f"""CREATE TRIGGER samples_audit_ownership AFTER UPDATE ON samples
WHEN {_sqlite_changed(_SAMPLE_COLUMNS)}
BEGIN
    INSERT INTO audit_events (occurred_at, actor, action, provider_id, submission_id, details)
    VALUES ({_SQLITE_NOW}, 'database', 'catalog_changed', NEW.provider_id, NEW.submission_id,
            json_object('table', 'samples', 'sample_id', NEW.id, 'text_changed', NEW.text IS NOT OLD.text,
                        {_sqlite_json_pairs(_SAMPLE_COLUMNS)}));
END""",
    f"""CREATE TRIGGER submissions_audit_ownership AFTER UPDATE ON submissions
WHEN {_sqlite_changed(_SUBMISSION_COLUMNS)}
BEGIN
    INSERT INTO audit_events (occurred_at, actor, action, provider_id, submission_id, details)
    VALUES ({_SQLITE_NOW}, 'database', 'catalog_changed', NEW.provider_id, NEW.id,
            json_object('table', 'submissions', {_sqlite_json_pairs(_SUBMISSION_COLUMNS)}));
END""",
    f"""CREATE TRIGGER campaigns_audit_change AFTER UPDATE ON campaigns
WHEN {_sqlite_changed(_CAMPAIGN_COLUMNS)}
BEGIN
    INSERT INTO audit_events (occurred_at, actor, action, campaign_id, details)
    VALUES ({_SQLITE_NOW}, 'database', 'campaign_changed', NEW.id,
            json_object('table', 'campaigns', {_sqlite_json_pairs(_CAMPAIGN_COLUMNS)}));
END""",
]


def _pg_changes(columns: list[str]) -> str:
    """jsonb of [old, new] for every column that changed (text only as a flag)."""
    parts = [f"CASE WHEN NEW.{c} IS DISTINCT FROM OLD.{c} THEN jsonb_build_object('{c}', "
             f"jsonb_build_array(to_jsonb(OLD.{c}), to_jsonb(NEW.{c}))) ELSE '{{}}'::jsonb END"
             for c in columns if c != "text"]
    return " || ".join(parts)


PG_FUNCTIONS = [
    f"""
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit: % on audit_events is refused: {_REFUSE}', TG_OP USING ERRCODE = 'restrict_violation';
END $$
""",
    f"""
CREATE FUNCTION audit_sample_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {' OR '.join(f'NEW.{c} IS DISTINCT FROM OLD.{c}' for c in _SAMPLE_COLUMNS)} THEN
        INSERT INTO audit_events (occurred_at, actor, action, provider_id, submission_id, details)
        VALUES (now(), current_user, 'catalog_changed', NEW.provider_id, NEW.submission_id,
                jsonb_build_object('table', 'samples', 'sample_id', NEW.id,
                                   'text_changed', NEW.text IS DISTINCT FROM OLD.text) || {_pg_changes(_SAMPLE_COLUMNS)});
    END IF;
    RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION audit_submission_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {' OR '.join(f'NEW.{c} IS DISTINCT FROM OLD.{c}' for c in _SUBMISSION_COLUMNS)} THEN
        INSERT INTO audit_events (occurred_at, actor, action, provider_id, submission_id, details)
        VALUES (now(), current_user, 'catalog_changed', NEW.provider_id, NEW.id,
                jsonb_build_object('table', 'submissions') || {_pg_changes(_SUBMISSION_COLUMNS)});
    END IF;
    RETURN NULL;
END $$
""",
    f"""
CREATE FUNCTION audit_campaign_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {' OR '.join(f'NEW.{c} IS DISTINCT FROM OLD.{c}' for c in _CAMPAIGN_COLUMNS)} THEN
        INSERT INTO audit_events (occurred_at, actor, action, campaign_id, details)
        VALUES (now(), current_user, 'campaign_changed', NEW.id,
                jsonb_build_object('table', 'campaigns') || {_pg_changes(_CAMPAIGN_COLUMNS)});
    END IF;
    RETURN NULL;
END $$
""",
]
PG_TRIGGERS = [
    "CREATE TRIGGER audit_events_immutable BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
    "CREATE TRIGGER samples_audit_ownership AFTER UPDATE ON samples "
    "FOR EACH ROW EXECUTE FUNCTION audit_sample_change()",
    "CREATE TRIGGER submissions_audit_ownership AFTER UPDATE ON submissions "
    "FOR EACH ROW EXECUTE FUNCTION audit_submission_change()",
    "CREATE TRIGGER campaigns_audit_change AFTER UPDATE ON campaigns "
    "FOR EACH ROW EXECUTE FUNCTION audit_campaign_change()",
]
_PG_DROP = [
    "DROP TRIGGER IF EXISTS campaigns_audit_change ON campaigns",
    "DROP TRIGGER IF EXISTS submissions_audit_ownership ON submissions",
    "DROP TRIGGER IF EXISTS samples_audit_ownership ON samples",
    "DROP FUNCTION IF EXISTS audit_campaign_change()",
    "DROP FUNCTION IF EXISTS audit_submission_change()",
    "DROP FUNCTION IF EXISTS audit_sample_change()",
]


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurred_at", marketplace.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("provider_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("submission_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("pricing_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("details", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_campaign_id", "audit_events", ["campaign_id"], unique=False)
    op.create_index("ix_audit_events_submission_id", "audit_events", ["submission_id"], unique=False)
    op.add_column("allocations", sa.Column("catalog_sha256", sa.String(length=64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for sql in (*PG_FUNCTIONS, *PG_TRIGGERS):
            op.execute(sql)
    else:
        for sql in SQLITE_TRIGGERS:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for sql in _PG_DROP:
            op.execute(sql)
        op.execute("DROP TABLE audit_events")  # its own triggers go with it
        op.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
    else:
        for name in ("campaigns_audit_change", "submissions_audit_ownership", "samples_audit_ownership",
                     "audit_events_no_update", "audit_events_no_delete", "audit_events_no_replace"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.drop_index("ix_audit_events_submission_id", table_name="audit_events")
        op.drop_index("ix_audit_events_campaign_id", table_name="audit_events")
        op.drop_table("audit_events")
    op.drop_column("allocations", "catalog_sha256")
