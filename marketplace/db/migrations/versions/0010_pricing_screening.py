"""the fine-tuning check a pricing run paid by

Revision ID: 0010_pricing_screening
Revises: 0009_portal_sessions
Create Date: 2026-12-02

- ``pricing_runs.screening`` (JSON, nullable): the fine-tuning check of every provider that the run's
  allocation followed (marketplace.validation.screening); NULL for runs priced without it and for every
  run from before this revision.
- The pricing-run freeze (0006) now covers the new column too: once written it never changes.

The SQL is inlined here on purpose: a migration must not change when the package changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_pricing_screening"
down_revision: str | None = "0009_portal_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FROZEN_0006 = ["id", "campaign_id", "period", "score_run_id", "approximator_version_id", "label_set_id", "policy",
                "policy_hash", "budget_minor", "currency", "cap_value", "n_eligible", "n_paid", "n_submissions",
                "allocated_minor", "unallocated_minor", "created_at", "audit_override"]
_CHANGE = "pricing run rows are frozen once complete or superseded; while allocated only status and finished_at change"


def _sqlite_trigger(columns: list[str]) -> str:
    return ("CREATE TRIGGER pricing_runs_frozen BEFORE UPDATE ON pricing_runs "
            "WHEN OLD.status <> 'allocated' OR NEW.status NOT IN ('allocated', 'complete', 'superseded') OR "
            + " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in columns)
            + f" BEGIN SELECT RAISE(ABORT, 'ledger: UPDATE on pricing_runs is refused: {_CHANGE}'); END")


def _pg_function(columns: list[str]) -> str:
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in columns)
    return f"""
CREATE OR REPLACE FUNCTION ledger_pricing_run_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'ledger: % on pricing_runs is refused: pricing runs are never deleted', TG_OP
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.status <> 'allocated' OR ({changed}) THEN
        RAISE EXCEPTION 'ledger: UPDATE on pricing_runs is refused: {_CHANGE}'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$
"""


def _set_freeze(columns: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_function(columns))
    else:
        op.execute("DROP TRIGGER IF EXISTS pricing_runs_frozen")
        op.execute(_sqlite_trigger(columns))


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    op.add_column("pricing_runs", sa.Column("screening", json_type, nullable=True))
    _set_freeze([*_FROZEN_0006, "screening"])


def downgrade() -> None:
    _set_freeze(_FROZEN_0006)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("pricing_runs", "screening")
    else:
        # SQLite >= 3.35 drops a column in place when no index, trigger or view names it; the freeze trigger
        # was rewritten without it just above.
        op.execute("ALTER TABLE pricing_runs DROP COLUMN screening")
