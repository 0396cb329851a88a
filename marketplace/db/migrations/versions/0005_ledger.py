"""pricing runs, allocations and the double-entry ledger, with database-level enforcement

Revision ID: 0005_ledger
Revises: 0004_near_duplicates
Create Date: 2026-11-22

Tables: pricing_runs, allocations, ledger_accounts, journal_transactions, journal_entries.
Enforcement (see marketplace/db/ledger.py for the design): seal triggers (a transaction header can
only be inserted after its entries, and only if they balance; no entry can join a sealed transaction),
triggers refusing UPDATE/DELETE (and TRUNCATE on PostgreSQL) of entries, transactions and allocations,
integer and positive amounts, and on PostgreSQL a deferred constraint trigger re-checking every
transaction's balance at COMMIT (one per header; entries without a header fail the deferred foreign key) plus the sequence that reserves transaction ids. The SQL is inlined
here on purpose: a migration must not change when the package changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import marketplace.db.base
import marketplace.db.ledger
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0005_ledger"
down_revision: str | None = "0004_near_duplicates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IMMUTABLE_TABLES = ("journal_entries", "journal_transactions", "allocations")

PG_FUNCTIONS = [
    """
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger: % on % is refused: posted rows are never changed; post a correcting transaction instead',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$
""",
    """
CREATE FUNCTION ledger_refuse_sealed() RETURNS trigger LANGUAGE plpgsql
    SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    sealed_id bigint;
BEGIN
    -- Statement level (one query per INSERT, however many rows): entries may only join a transaction
    -- whose header has not been inserted yet.
    SELECT n.transaction_id INTO sealed_id
      FROM new_entries n JOIN journal_transactions t ON t.id = n.transaction_id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger: transaction % is sealed; entries cannot be added to a posted transaction',
            sealed_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$
""",
    """
CREATE FUNCTION ledger_check_seal() RETURNS trigger LANGUAGE plpgsql
    SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    bad record;
BEGIN
    -- Statement level: every header inserted by this statement must seal >= 2 entries in its own
    -- currency with debits = credits.
    SELECT h.id, h.idempotency_key, h.currency,
           coalesce(x.n_entries, 0) AS n_entries, coalesce(x.debits, 0) AS debits,
           coalesce(x.credits, 0) AS credits, coalesce(x.n_foreign, 0) AS n_foreign
      INTO bad
      FROM new_headers h
      LEFT JOIN LATERAL (
            SELECT count(*) AS n_entries,
                   sum(e.amount_minor) FILTER (WHERE e.side = 'debit') AS debits,
                   sum(e.amount_minor) FILTER (WHERE e.side = 'credit') AS credits,
                   count(*) FILTER (WHERE a.currency <> h.currency) AS n_foreign
              FROM journal_entries e JOIN ledger_accounts a ON a.id = e.account_id
             WHERE e.transaction_id = h.id) x ON true
     WHERE coalesce(x.n_entries, 0) < 2 OR coalesce(x.debits, 0) <> coalesce(x.credits, 0)
        OR coalesce(x.n_foreign, 0) > 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger: transaction % (key %) does not balance: % entries, debits %, credits %, % in another currency than %',
            bad.id, bad.idempotency_key, bad.n_entries, bad.debits, bad.credits, bad.n_foreign, bad.currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$
""",
    """
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql
    SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    n_entries bigint; debits numeric; credits numeric;
BEGIN
    -- Deferred to COMMIT, once per transaction header: whatever happened inside the database
    -- transaction, each posted journal transaction must balance when it becomes visible.
    SELECT count(*),
           coalesce(sum(amount_minor) FILTER (WHERE side = 'debit'), 0),
           coalesce(sum(amount_minor) FILTER (WHERE side = 'credit'), 0)
      INTO n_entries, debits, credits
      FROM journal_entries WHERE transaction_id = NEW.id;
    IF n_entries < 2 OR debits <> credits THEN
        RAISE EXCEPTION 'ledger: at commit, transaction % (key %) does not balance: % entries, debits %, credits %',
            NEW.id, NEW.idempotency_key, n_entries, debits, credits USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$
""",
]

PG_TRIGGERS = [
    *(
        f"CREATE TRIGGER {t}_immutable BEFORE UPDATE OR DELETE ON {t} "
        "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        for t in IMMUTABLE_TABLES
    ),
    *(
        f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        for t in IMMUTABLE_TABLES
    ),
    "CREATE TRIGGER journal_entries_sealed AFTER INSERT ON journal_entries REFERENCING NEW TABLE AS new_entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_sealed()",
    "CREATE TRIGGER journal_transactions_seal AFTER INSERT ON journal_transactions "
    "REFERENCING NEW TABLE AS new_headers FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_seal()",
    "CREATE CONSTRAINT TRIGGER journal_transactions_balanced AFTER INSERT ON journal_transactions "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()",
]

SQLITE_TRIGGERS = [
    *(
        f"CREATE TRIGGER {t}_no_{op_name.lower()} BEFORE {op_name} ON {t} BEGIN "
        f"SELECT RAISE(ABORT, 'ledger: {op_name} on {t} is refused: posted rows are never changed; "
        "post a correcting transaction instead'); END"
        for t in IMMUTABLE_TABLES
        for op_name in ("UPDATE", "DELETE")
    ),
    """CREATE TRIGGER journal_entries_sealed BEFORE INSERT ON journal_entries
WHEN EXISTS (SELECT 1 FROM journal_transactions WHERE id = NEW.transaction_id)
BEGIN
    SELECT RAISE(ABORT, 'ledger: transaction is sealed; entries cannot be added to a posted transaction');
END""",
    """CREATE TRIGGER journal_transactions_seal BEFORE INSERT ON journal_transactions
WHEN (SELECT count(*) FROM journal_entries WHERE transaction_id = NEW.id) < 2
  OR (SELECT coalesce(sum(CASE WHEN side = 'debit' THEN amount_minor ELSE -amount_minor END), 0)
        FROM journal_entries WHERE transaction_id = NEW.id) <> 0
  OR EXISTS (SELECT 1 FROM journal_entries e JOIN ledger_accounts a ON a.id = e.account_id
              WHERE e.transaction_id = NEW.id AND a.currency <> NEW.currency)
BEGIN
    SELECT RAISE(ABORT, 'ledger: transaction does not balance (needs >= 2 entries in its currency, debits = credits)');
END""",
]


def _integer_amount_checks() -> list[sa.CheckConstraint]:
    """SQLite: typeof() = 'integer' (refuses 1.5). PostgreSQL: the NUMERIC column must hold an integer."""
    if op.get_bind().dialect.name == "sqlite":
        return [sa.CheckConstraint("typeof(amount_minor) = 'integer'", name=op.f("ck_journal_entries_amount_integer"))]
    return [
        sa.CheckConstraint(
            "amount_minor = trunc(amount_minor) AND amount_minor < 9223372036854775808",
            name=op.f("ck_journal_entries_amount_integral"),
        )
    ]


def upgrade() -> None:
    op.create_table('ledger_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=200), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('kind', sa.Enum('campaign_budget', 'provider_payable', 'marketplace_fees', 'other', name='account_kind', native_enum=False, length=20), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('debits_minor', sa.BigInteger(), nullable=False),
    sa.Column('credits_minor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', marketplace.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('debits_minor >= 0 AND credits_minor >= 0', name=op.f('ck_ledger_accounts_totals_nonneg')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_ledger_accounts_campaign_id_campaigns'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_ledger_accounts_provider_id_providers'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('code', 'currency', name=op.f('uq_ledger_accounts_code_currency'))
    )
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_accounts_provider_id'), ['provider_id'], unique=False)

    op.create_table('pricing_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('score_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('approximator_version_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('label_set_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('policy_hash', sa.String(length=64), nullable=False),
    sa.Column('budget_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('cap_value', sa.Float(), nullable=True),
    sa.Column('n_eligible', sa.Integer(), nullable=False),
    sa.Column('n_paid', sa.Integer(), nullable=False),
    sa.Column('n_submissions', sa.Integer(), nullable=False),
    sa.Column('allocated_minor', sa.BigInteger(), nullable=False),
    sa.Column('unallocated_minor', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Enum('allocated', 'complete', 'superseded', name='pricing_run_status', native_enum=False, length=20), nullable=False),
    sa.Column('created_at', marketplace.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', marketplace.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('allocated_minor + unallocated_minor = budget_minor', name=op.f('ck_pricing_runs_budget_adds_up')),
    sa.CheckConstraint('budget_minor >= 0 AND allocated_minor >= 0 AND unallocated_minor >= 0', name=op.f('ck_pricing_runs_amounts_nonneg')),
    sa.ForeignKeyConstraint(['approximator_version_id'], ['approximator_versions.id'], name=op.f('fk_pricing_runs_approximator_version_id_approximator_versions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_pricing_runs_campaign_id_campaigns'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['label_set_id'], ['label_sets.id'], name=op.f('fk_pricing_runs_label_set_id_label_sets'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['score_run_id'], ['score_runs.id'], name=op.f('fk_pricing_runs_score_run_id_score_runs'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pricing_runs')),
    sa.UniqueConstraint('campaign_id', 'period', 'score_run_id', 'policy_hash', 'budget_minor', name=op.f('uq_pricing_runs_campaign_id_period_score_run_id_policy_hash_budget_minor'))
    )
    with op.batch_alter_table('pricing_runs', schema=None) as batch_op:
        batch_op.create_index('ix_pricing_runs_campaign_period', ['campaign_id', 'period'], unique=False)
        batch_op.create_index(batch_op.f('ix_pricing_runs_score_run_id'), ['score_run_id'], unique=False)

    op.create_table('allocations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pricing_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('sample_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('submission_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount_minor >= 0', name=op.f('ck_allocations_amount_nonneg')),
    sa.ForeignKeyConstraint(['pricing_run_id'], ['pricing_runs.id'], name=op.f('fk_allocations_pricing_run_id_pricing_runs'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_allocations_provider_id_providers'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['sample_id'], ['samples.id'], name=op.f('fk_allocations_sample_id_samples'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'], name=op.f('fk_allocations_submission_id_submissions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocations')),
    sa.UniqueConstraint('pricing_run_id', 'sample_id', name=op.f('uq_allocations_pricing_run_id_sample_id'))
    )
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.create_index('ix_allocations_run_provider', ['pricing_run_id', 'provider_id'], unique=False)
        batch_op.create_index('ix_allocations_run_submission', ['pricing_run_id', 'submission_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_allocations_sample_id'), ['sample_id'], unique=False)

    op.create_table('journal_transactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('kind', sa.Enum('allocation', 'adjustment', 'manual', name='transaction_kind', native_enum=False, length=20), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('campaign_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('period', sa.String(length=10), nullable=True),
    sa.Column('pricing_run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('submission_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('memo', sa.Text(), nullable=True),
    sa.Column('posted_at', marketplace.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_journal_transactions_campaign_id_campaigns'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['pricing_run_id'], ['pricing_runs.id'], name=op.f('fk_journal_transactions_pricing_run_id_pricing_runs'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_journal_transactions_provider_id_providers'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['submission_id'], ['submissions.id'], name=op.f('fk_journal_transactions_submission_id_submissions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_transactions')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_journal_transactions_idempotency_key'))
    )
    with op.batch_alter_table('journal_transactions', schema=None) as batch_op:
        batch_op.create_index('ix_journal_transactions_campaign_period_submission', ['campaign_id', 'period', 'submission_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_transactions_pricing_run_id'), ['pricing_run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_transactions_provider_id'), ['provider_id'], unique=False)

    op.create_table('journal_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('side', sa.Enum('debit', 'credit', name='entry_side', native_enum=False), nullable=False),
    sa.Column('amount_minor', marketplace.db.ledger.AmountMinor(), nullable=False),
    sa.CheckConstraint("side IN ('debit', 'credit')", name=op.f('ck_journal_entries_side_valid')),
    *_integer_amount_checks(),
    sa.CheckConstraint('amount_minor > 0', name=op.f('ck_journal_entries_amount_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_journal_entries_account_id_ledger_accounts'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['transaction_id'], ['journal_transactions.id'], name=op.f('fk_journal_entries_transaction_id_journal_transactions'), ondelete='RESTRICT', initially='DEFERRED', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_entries'))
    )
    with op.batch_alter_table('journal_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_journal_entries_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_journal_entries_transaction_id'), ['transaction_id'], unique=False)

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE SEQUENCE journal_transaction_ids")
        for sql in PG_FUNCTIONS:
            op.execute(sql)
        for sql in PG_TRIGGERS:
            op.execute(sql)
    else:
        for sql in SQLITE_TRIGGERS:
            op.execute(sql)


def downgrade() -> None:
    # Triggers go with their tables.
    with op.batch_alter_table('journal_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_entries_transaction_id'))
        batch_op.drop_index(batch_op.f('ix_journal_entries_account_id'))

    op.drop_table('journal_entries')
    with op.batch_alter_table('journal_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_transactions_provider_id'))
        batch_op.drop_index(batch_op.f('ix_journal_transactions_pricing_run_id'))
        batch_op.drop_index('ix_journal_transactions_campaign_period_submission')

    op.drop_table('journal_transactions')
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_allocations_sample_id'))
        batch_op.drop_index('ix_allocations_run_submission')
        batch_op.drop_index('ix_allocations_run_provider')

    op.drop_table('allocations')
    with op.batch_alter_table('pricing_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pricing_runs_score_run_id'))
        batch_op.drop_index('ix_pricing_runs_campaign_period')

    op.drop_table('pricing_runs')
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_accounts_provider_id'))

    op.drop_table('ledger_accounts')
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS journal_transaction_ids")
        for name in ("ledger_refuse_change", "ledger_refuse_sealed", "ledger_check_seal", "ledger_check_balanced"):
            op.execute(f"DROP FUNCTION IF EXISTS {name}() CASCADE")
