"""Pricing runs, their per-sample allocations, and the double-entry ledger (docs/pricing-and-ledger.md).

Ledger tables: ``ledger_accounts`` (one row per account and currency, with stored debit and credit
totals), ``journal_transactions`` (one per posting: unique idempotency key + sha256 of the canonical
request body) and ``journal_entries`` (explicit side, positive integer ``amount_minor``).

**Database enforcement** (migration ``0005_ledger`` creates it and holds the
SQL). The same "seal" design runs on both engines because SQLite has no deferred constraint triggers:

- entries of a transaction are inserted *first*, under a transaction id reserved in advance; the
  foreign key entries → transactions is ``DEFERRABLE INITIALLY DEFERRED``, so entries without their
  header fail at COMMIT;
- inserting the header *seals* the transaction: an insert trigger on ``journal_transactions`` refuses
  it unless its entries number at least 2, all in the header's currency, and debits = credits;
- an insert trigger on ``journal_entries`` refuses entries for a transaction already sealed;
- (SQLite: BEFORE INSERT row triggers. PostgreSQL: AFTER INSERT *statement-level* triggers over the
  transition table, one query per batch, with ``plan_cache_mode = force_custom_plan`` so that a plan
  cached while the tables were small never turns into a sequential scan per row later);
- BEFORE UPDATE / DELETE triggers refuse any change to entries, transactions and allocations;
- (migration ``0006_books_hardening``) an insert reusing the primary or unique key of a posted row is
  refused (SQLite ``REPLACE`` / ``INSERT OR ...`` would delete it without a DELETE trigger); pricing
  runs are frozen once complete or superseded and never deleted;
- ``amount_minor > 0``; on SQLite also ``typeof(amount_minor) = 'integer'`` (so 1.5 is refused).
- PostgreSQL additionally runs a ``DEFERRABLE INITIALLY DEFERRED`` constraint trigger (one per header)
  that re-checks each transaction's balance at COMMIT, and stores ``amount_minor`` as NUMERIC with
  ``CHECK (amount_minor = trunc(amount_minor))``: a BIGINT column would silently *round* 1.5 to 2 by
  PostgreSQL's assignment cast before any constraint could see it.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Dialect,
    Float,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from marketplace.db.base import (
    Base,
    IdType,
    JsonType,
    UTCDateTime,
    created_at_column,
    foreign_id,
    primary_id,
    string_enum,
)

__all__ = [
    "AccountKind",
    "Allocation",
    "AmountMinor",
    "EntrySide",
    "JournalEntry",
    "JournalTransaction",
    "LedgerAccount",
    "PricingRun",
    "PricingRunStatus",
    "TransactionKind",
]


class PricingRunStatus(enum.StrEnum):
    """A run moves allocated -> complete, or allocated -> superseded; never back."""

    ALLOCATED = "allocated"  # allocations stored, transactions (partly) not yet posted
    COMPLETE = "complete"  # every submission's transaction posted
    SUPERSEDED = "superseded"  # a newer run for the same campaign and period posted first; this one stops


class EntrySide(enum.StrEnum):
    """Entries carry a positive amount and an explicit side, never a sign."""

    DEBIT = "debit"
    CREDIT = "credit"


class AmountMinor(TypeDecorator[int]):
    """Integer minor units: BIGINT on SQLite, exact NUMERIC on PostgreSQL (see the module docstring)."""

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric())
        return dialect.type_descriptor(BigInteger())

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class AccountKind(enum.StrEnum):
    """What an account holds; the kind fixes its normal side (marketplace.ledger.accounts)."""

    CAMPAIGN_BUDGET = "campaign_budget"
    PROVIDER_PAYABLE = "provider_payable"
    MARKETPLACE_FEES = "marketplace_fees"
    OTHER = "other"


class TransactionKind(enum.StrEnum):
    """Why a transaction was posted (pricing posts allocations and adjustments)."""

    ALLOCATION = "allocation"  # first credit of a submission for a period
    ADJUSTMENT = "adjustment"  # revaluation: the difference to everything credited before
    MANUAL = "manual"


class PricingRun(Base):
    """One pricing of a campaign's period from one score run under one policy and budget.

    Idempotent: the unique key (campaign, period, score run, policy hash, budget) makes two concurrent
    ``price`` calls share one run.
    """

    __tablename__ = "pricing_runs"
    __table_args__ = (
        UniqueConstraint("campaign_id", "period", "score_run_id", "policy_hash", "budget_minor"),
        CheckConstraint("budget_minor >= 0 AND allocated_minor >= 0 AND unallocated_minor >= 0", name="amounts_nonneg"),
        CheckConstraint("allocated_minor + unallocated_minor = budget_minor", name="budget_adds_up"),
        Index("ix_pricing_runs_campaign_period", "campaign_id", "period"),
    )

    id: Mapped[int] = primary_id()
    campaign_id: Mapped[int] = foreign_id("campaigns.id")
    period: Mapped[str] = mapped_column(String(10))
    score_run_id: Mapped[int] = foreign_id("score_runs.id", index=True)
    approximator_version_id: Mapped[int] = foreign_id("approximator_versions.id")
    label_set_id: Mapped[int] = foreign_id("label_sets.id")
    policy: Mapped[dict[str, Any]] = mapped_column(JsonType)
    policy_hash: Mapped[str] = mapped_column(String(64))
    budget_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    cap_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_eligible: Mapped[int] = mapped_column(Integer)
    n_paid: Mapped[int] = mapped_column(Integer)
    n_submissions: Mapped[int] = mapped_column(Integer)
    allocated_minor: Mapped[int] = mapped_column(BigInteger)
    unallocated_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[PricingRunStatus] = mapped_column(string_enum(PricingRunStatus, "pricing_run_status"),
                                                     default=PricingRunStatus.ALLOCATED)
    created_at: Mapped[dt.datetime] = created_at_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Why this run was priced without a passed audit (``marketplace price --override-audit``); None: audited.
    audit_override: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The fine-tuning check the run paid by (marketplace.validation.screening.Screening.to_json); None when
    # its policy's screen is "none" (and on runs from before the check existed).
    screening: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)


class Allocation(Base):
    """One eligible sample's value and payout in one pricing run (immutable once written)."""

    __tablename__ = "allocations"
    __table_args__ = (
        UniqueConstraint("pricing_run_id", "sample_id"),
        CheckConstraint("amount_minor >= 0", name="amount_nonneg"),
        Index("ix_allocations_run_submission", "pricing_run_id", "submission_id"),
        Index("ix_allocations_run_provider", "pricing_run_id", "provider_id"),
    )

    id: Mapped[int] = primary_id()
    pricing_run_id: Mapped[int] = foreign_id("pricing_runs.id")
    sample_id: Mapped[int] = foreign_id("samples.id", index=True)
    submission_id: Mapped[int] = foreign_id("submissions.id")
    provider_id: Mapped[int] = foreign_id("providers.id")
    score: Mapped[float] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    # The sample's ownership when it was priced (marketplace.db.priced_catalog.fingerprint); None on rows
    # written before migration 0007. ``ledger verify`` recomputes it.
    catalog_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LedgerAccount(Base):
    """An account in one currency with its stored debit and credit totals (a replay must match them)."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("code", "currency"),
        CheckConstraint("debits_minor >= 0 AND credits_minor >= 0", name="totals_nonneg"),
    )

    id: Mapped[int] = primary_id()
    code: Mapped[str] = mapped_column(String(200))  # campaign:{id}:budget, provider:{id}:payable, marketplace:fees
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[AccountKind] = mapped_column(string_enum(AccountKind, "account_kind"))
    campaign_id: Mapped[int | None] = foreign_id("campaigns.id", nullable=True)
    provider_id: Mapped[int | None] = foreign_id("providers.id", nullable=True, index=True)
    debits_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = created_at_column()


class JournalTransaction(Base):
    """A posted, balanced, immutable set of entries. Inserted *after* its entries: it seals them."""

    __tablename__ = "journal_transactions"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        Index("ix_journal_transactions_campaign_period_submission", "campaign_id", "period", "submission_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    body_sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)  # the canonical JSON that body_sha256 hashes
    kind: Mapped[TransactionKind] = mapped_column(string_enum(TransactionKind, "transaction_kind"))
    currency: Mapped[str] = mapped_column(String(3))
    campaign_id: Mapped[int | None] = foreign_id("campaigns.id", nullable=True)
    period: Mapped[str | None] = mapped_column(String(10), nullable=True)
    pricing_run_id: Mapped[int | None] = foreign_id("pricing_runs.id", nullable=True, index=True)
    submission_id: Mapped[int | None] = foreign_id("submissions.id", nullable=True)
    provider_id: Mapped[int | None] = foreign_id("providers.id", nullable=True, index=True)
    memo: Mapped[str | None] = mapped_column(Text, nullable=True)
    posted_at: Mapped[dt.datetime] = created_at_column()
    # sha256 of id, body_sha256 and posted_at (marketplace.ledger.posting.seal_sha256): the columns the body
    # cannot cover. Migration 0006 sealed the rows posted before it.
    seal_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class JournalEntry(Base):
    __tablename__ = "journal_entries"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("side IN ('debit', 'credit')", name="side_valid"),
        CheckConstraint("typeof(amount_minor) = 'integer'", name="amount_integer").ddl_if(dialect="sqlite"),
        CheckConstraint(
            "amount_minor = trunc(amount_minor) AND amount_minor < 9223372036854775808", name="amount_integral"
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = primary_id()
    # Deferred: the entries are inserted before the header that seals them (see the module docstring).
    transaction_id: Mapped[int] = foreign_id("journal_transactions.id", index=True, deferrable=True,
                                             initially="DEFERRED")
    account_id: Mapped[int] = foreign_id("ledger_accounts.id", index=True)
    side: Mapped[EntrySide] = mapped_column(string_enum(EntrySide, "entry_side", length=6))
    amount_minor: Mapped[int] = mapped_column(AmountMinor())
