"""harden the books: no rewrite of an append-only row, sealed transaction rows, recorded audit overrides

Revision ID: 0006_books_hardening
Revises: 0005_ledger
Create Date: 2026-11-29

- ``journal_transactions.seal_sha256``: sha256 of the transaction id, its ``body_sha256`` and its
  ``posted_at`` (the columns the request body cannot cover), so ``ledger verify`` checks every stored
  column; existing rows are sealed here.
- ``pricing_runs.audit_override``: the operator's reason when a run was priced without a passed audit.
- SQLite: BEFORE INSERT triggers refuse an insert that reuses the primary or unique key of a row of
  journal_transactions, journal_entries, allocations, pricing_runs (``REPLACE INTO`` / ``INSERT OR
  REPLACE`` delete the old row without firing DELETE triggers); ledger_accounts refuses a reused id.
- Both engines: a pricing run is frozen once it is complete or superseded; while allocated only its
  status and finished_at may change; pricing runs are never deleted (nor truncated on PostgreSQL).
  PostgreSQL ``INSERT ... ON CONFLICT DO UPDATE`` fires the BEFORE UPDATE triggers, which refuse it.
The SQL is inlined here on purpose: a migration must not change when the package changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import marketplace.db.base

revision: str = "0006_books_hardening"
down_revision: str | None = "0005_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSE = "posted rows are never replaced; post a correcting transaction instead"
# Unique keys per append-only table (SQLite reuses of any of them are refused).
_KEYS = {
    "journal_transactions": ["NEW.id = t.id", "NEW.idempotency_key = t.idempotency_key"],
    "journal_entries": ["NEW.id = t.id"],
    "allocations": ["NEW.id = t.id", "(NEW.pricing_run_id = t.pricing_run_id AND NEW.sample_id = t.sample_id)"],
    "pricing_runs": [
        "NEW.id = t.id",
        "(NEW.campaign_id = t.campaign_id AND NEW.period = t.period AND NEW.score_run_id = t.score_run_id "
        "AND NEW.policy_hash = t.policy_hash AND NEW.budget_minor = t.budget_minor)",
    ],
    "ledger_accounts": ["NEW.id = t.id"],
}
# Columns of a pricing run that never change after it is created.
_RUN_FROZEN = ["id", "campaign_id", "period", "score_run_id", "approximator_version_id", "label_set_id", "policy",
               "policy_hash", "budget_minor", "currency", "cap_value", "n_eligible", "n_paid", "n_submissions",
               "allocated_minor", "unallocated_minor", "created_at", "audit_override"]
_RUN_CHANGE = "pricing run rows are frozen once complete or superseded; while allocated only status and finished_at change"

SQLITE_TRIGGERS = [
    *(
        f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
        f"WHEN EXISTS (SELECT 1 FROM {table} t WHERE {' OR '.join(keys)}) BEGIN "
        f"SELECT RAISE(ABORT, 'ledger: INSERT reusing the key of an existing {table} row is refused: {_REFUSE}'); END"
        for table, keys in _KEYS.items()
    ),
    "CREATE TRIGGER pricing_runs_no_delete BEFORE DELETE ON pricing_runs BEGIN "
    "SELECT RAISE(ABORT, 'ledger: DELETE on pricing_runs is refused: pricing runs are never deleted'); END",
    "CREATE TRIGGER pricing_runs_frozen BEFORE UPDATE ON pricing_runs "
    "WHEN OLD.status <> 'allocated' OR NEW.status NOT IN ('allocated', 'complete', 'superseded') OR "
    + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _RUN_FROZEN)
    + f" BEGIN SELECT RAISE(ABORT, 'ledger: UPDATE on pricing_runs is refused: {_RUN_CHANGE}'); END",
]

PG_FUNCTIONS = [
    f"""
CREATE FUNCTION ledger_pricing_run_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'ledger: % on pricing_runs is refused: pricing runs are never deleted', TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'allocated' OR ({' OR '.join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in _RUN_FROZEN)}) THEN
        RAISE EXCEPTION 'ledger: UPDATE on pricing_runs is refused: {_RUN_CHANGE}'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$
""",
]
PG_TRIGGERS = [
    "CREATE TRIGGER pricing_runs_frozen BEFORE UPDATE OR DELETE ON pricing_runs "
    "FOR EACH ROW EXECUTE FUNCTION ledger_pricing_run_frozen()",
    "CREATE TRIGGER pricing_runs_no_truncate BEFORE TRUNCATE ON pricing_runs "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_pricing_run_frozen()",
]


def _seal(tid: int, body_sha256: str, posted_at: dt.datetime) -> str:
    """The seal of a stored transaction row (the same as marketplace.ledger.posting.seal_sha256)."""
    stamp = posted_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return hashlib.sha256(f"{int(tid)}|{body_sha256}|{stamp}".encode()).hexdigest()


def _seal_existing_rows(dialect: str) -> None:
    txn = sa.table("journal_transactions", sa.column("id", sa.BigInteger()), sa.column("body_sha256", sa.String()),
                   sa.column("posted_at", marketplace.db.base.UTCDateTime(timezone=True)),
                   sa.column("seal_sha256", sa.String()))
    bind = op.get_bind()
    rows = bind.execute(sa.select(txn.c.id, txn.c.body_sha256, txn.c.posted_at)).all()
    if not rows:
        return
    # The update triggers of 0005 refuse any change; lift them for this one backfill.
    if dialect == "postgresql":
        op.execute("ALTER TABLE journal_transactions DISABLE TRIGGER journal_transactions_immutable")
    else:
        op.execute("DROP TRIGGER journal_transactions_no_update")
    bind.execute(txn.update().where(txn.c.id == sa.bindparam("tid")).values(seal_sha256=sa.bindparam("seal")),
                 [{"tid": tid, "seal": _seal(tid, sha, at)} for tid, sha, at in rows])
    if dialect == "postgresql":
        op.execute("ALTER TABLE journal_transactions ENABLE TRIGGER journal_transactions_immutable")
    else:
        op.execute(
            "CREATE TRIGGER journal_transactions_no_update BEFORE UPDATE ON journal_transactions BEGIN "
            "SELECT RAISE(ABORT, 'ledger: UPDATE on journal_transactions is refused: posted rows are never changed; "
            "post a correcting transaction instead'); END"
        )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("journal_transactions", sa.Column("seal_sha256", sa.String(length=64), nullable=True))
    op.add_column("pricing_runs", sa.Column("audit_override", sa.Text(), nullable=True))
    _seal_existing_rows(dialect)
    if dialect == "postgresql":
        for sql in (*PG_FUNCTIONS, *PG_TRIGGERS):
            op.execute(sql)
    else:
        for sql in SQLITE_TRIGGERS:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS pricing_runs_no_truncate ON pricing_runs")
        op.execute("DROP TRIGGER IF EXISTS pricing_runs_frozen ON pricing_runs")
        op.execute("DROP FUNCTION IF EXISTS ledger_pricing_run_frozen()")
    else:
        for table in _KEYS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_replace")
        op.execute("DROP TRIGGER IF EXISTS pricing_runs_no_delete")
        op.execute("DROP TRIGGER IF EXISTS pricing_runs_frozen")
    op.drop_column("pricing_runs", "audit_override")
    op.drop_column("journal_transactions", "seal_sha256")
