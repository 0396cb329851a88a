"""drop the redundant index on samples.submission_id

Revision ID: 0011_samples_redundant_index
Revises: 0010_pricing_screening
Create Date: 2026-12-02

``ix_samples_submission_id`` (submission_id) repeats the leading column of the unique constraint
``uq_samples_submission_id_record_index`` (submission_id, record_index), which serves every lookup by
submission (and the foreign key's checks) on both engines; SQLite backs that constraint with its own
index. The extra B-tree only cost a write per sample ingested, six indexes remain. The downgrade
builds it again.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_samples_redundant_index"
down_revision: str | None = "0010_pricing_screening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_samples_submission_id", table_name="samples")


def downgrade() -> None:
    op.create_index("ix_samples_submission_id", "samples", ["submission_id"], unique=False)
