"""near-duplicate index (MinHash LSH bands + signatures) and the submissions' params stamp, owned by ingestion

Revision ID: 0004_near_duplicates
Revises: 0003_scoring
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import marketplace.db.base

revision: str = "0004_near_duplicates"
down_revision: str | None = "0003_scoring"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('near_dup_bands',
    sa.Column('band_key', sa.BigInteger(), nullable=False),
    sa.Column('sample_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('band_key', 'sample_id', name=op.f('pk_near_dup_bands')),
    sqlite_with_rowid=False
    )
    op.create_table('near_dup_indexes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('params_sha256', sa.String(length=64), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', marketplace.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_near_dup_indexes')),
    sa.UniqueConstraint('params_sha256', name=op.f('uq_near_dup_indexes_params_sha256'))
    )
    op.create_table('near_dup_signatures',
    sa.Column('sample_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('index_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['index_id'], ['near_dup_indexes.id'], name=op.f('fk_near_dup_signatures_index_id_near_dup_indexes'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['sample_id'], ['samples.id'], name=op.f('fk_near_dup_signatures_sample_id_samples'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('sample_id', 'index_id', name=op.f('pk_near_dup_signatures'))
    )

    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('params_sha256', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_column('params_sha256')

    op.drop_table('near_dup_signatures')
    op.drop_table('near_dup_indexes')
    op.drop_table('near_dup_bands')
