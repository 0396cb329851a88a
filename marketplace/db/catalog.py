"""Providers, their submissions (files), the samples they contain and the records quarantined.

Ownership rule (docs/pricing-and-ledger.md): of all accepted samples with the same normalised content, exactly one
is the *first owner* (``duplicate_of_id IS NULL``); every later copy, exact or near, points at it and
can never be credited. A partial unique index makes the database itself refuse a second first owner
of the same content hash.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.db.base import Base, JsonType, created_at_column, foreign_id, primary_id, string_enum

__all__ = ["DuplicateKind", "Provider", "QuarantinedRecord", "Sample", "Submission", "SubmissionStatus"]


class SubmissionStatus(enum.StrEnum):
    """Rejected files leave no row, so a submission is either accepted or a copy."""

    ACCEPTED = "accepted"
    # Same bytes as a submission another provider made earlier: recorded, every sample a duplicate.
    COPY = "copy"


class DuplicateKind(enum.StrEnum):
    """How a duplicate matches its first owner: the same content hash, or a MinHash near match."""

    EXACT = "exact"
    NEAR = "near"


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[int] = primary_id()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = created_at_column()

    submissions: Mapped[list[Submission]] = relationship(back_populates="provider")


class Submission(Base):
    """One provider file, accepted whole (rejected files leave no row at all)."""

    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("provider_id", "content_sha256"),
        CheckConstraint("n_records >= 0 AND n_accepted >= 0 AND n_quarantined >= 0", name="counts_nonneg"),
        CheckConstraint("n_accepted + n_quarantined = n_records", name="counts_add_up"),
    )

    id: Mapped[int] = primary_id()
    provider_id: Mapped[int] = foreign_id("providers.id", index=True)
    filename: Mapped[str] = mapped_column(String(1000))
    format: Mapped[str] = mapped_column(String(20))
    content_sha256: Mapped[str] = mapped_column(String(64), index=True)
    byte_size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[SubmissionStatus] = mapped_column(string_enum(SubmissionStatus, "submission_status"))
    copy_of_submission_id: Mapped[int | None] = foreign_id("submissions.id", ondelete=None, nullable=True)
    field_mapping: Mapped[dict[str, str]] = mapped_column(JsonType, default=dict)
    n_records: Mapped[int] = mapped_column(Integer, default=0)
    n_accepted: Mapped[int] = mapped_column(Integer, default=0)
    n_quarantined: Mapped[int] = mapped_column(Integer, default=0)
    n_exact_duplicates: Mapped[int] = mapped_column(Integer, default=0)
    n_near_duplicates: Mapped[int] = mapped_column(Integer, default=0)
    # Hash of the ingestion parameters (limits, resolved field mapping, normal form, near-dup params)
    # that produced this submission's samples; see marketplace.ingest.ingest.submission_params_sha256.
    params_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()

    provider: Mapped[Provider] = relationship(back_populates="submissions")


class Sample(Base):
    """One accepted record, normalised. ``text`` is what valuation sees.

    For prompt/response records ``text`` is ``prompt + "\\n" + response`` and ``prompt_chars`` is the
    length of the prompt part, so valuation can mask prompt tokens out of the loss.
    """

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("submission_id", "record_index"),
        CheckConstraint("duplicate_of_id IS NULL OR duplicate_kind IS NOT NULL", name="dup_kind_set"),
        # Exactly one first owner per normalised content (both SQLite and PostgreSQL support this).
        Index(
            "uq_samples_first_owner_hash",
            "content_hash",
            unique=True,
            sqlite_where=text("duplicate_of_id IS NULL"),
            postgresql_where=text("duplicate_of_id IS NULL"),
        ),
        Index("ix_samples_content_hash", "content_hash"),
    )

    id: Mapped[int] = primary_id()
    # Lookups by submission use the unique (submission_id, record_index) index below (migration 0011).
    submission_id: Mapped[int] = foreign_id("submissions.id")
    provider_id: Mapped[int] = foreign_id("providers.id", index=True)
    record_index: Mapped[int] = mapped_column(Integer)  # 0-based position of the record in its file
    text: Mapped[str] = mapped_column(Text)
    prompt_chars: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    n_chars: Mapped[int] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    licence: Mapped[str | None] = mapped_column(String(200), nullable=True)
    duplicate_of_id: Mapped[int | None] = foreign_id("samples.id", ondelete=None, nullable=True, index=True)
    duplicate_kind: Mapped[DuplicateKind | None] = mapped_column(string_enum(DuplicateKind, "duplicate_kind", 10),
                                                                 nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()


class QuarantinedRecord(Base):
    """A record of an accepted file that failed validation, kept with why and where."""

    __tablename__ = "quarantined_records"

    id: Mapped[int] = primary_id()
    submission_id: Mapped[int] = foreign_id("submissions.id", index=True)
    record_index: Mapped[int] = mapped_column(Integer)
    location: Mapped[str] = mapped_column(String(200))  # "line 17", "row 3", "row 12 of batch 2"
    reason_code: Mapped[str] = mapped_column(String(50), index=True)
    detail: Mapped[str] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)  # first 200 chars, for humans
    created_at: Mapped[dt.datetime] = created_at_column()
