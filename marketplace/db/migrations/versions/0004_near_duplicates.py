"""near-duplicate index (MinHash LSH bands), owned by ingestion

Revision ID: 0004_near_duplicates
Revises: 0003_scoring
Create Date: 2026-11-22

Placeholder in the revision chain: filled in by the change that adds these tables.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0004_near_duplicates"
down_revision: str | None = "0003_scoring"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
