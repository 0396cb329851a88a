"""pricing runs, allocations and the double-entry ledger

Revision ID: 0005_ledger
Revises: 0004_near_duplicates
Create Date: 2026-11-22

Placeholder in the revision chain: filled in by the change that adds these tables.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005_ledger"
down_revision: str | None = "0004_near_duplicates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
