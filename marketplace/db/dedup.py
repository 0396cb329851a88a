"""The persistent near-duplicate index (MinHash LSH), owned by ingestion.

One :class:`NearDupIndex` row per near-duplicate parameter set (``DedupParams``, identified by its
hash): signatures made with other parameters are never compared. Only *first owners* (samples with
``duplicate_of_id IS NULL``) are indexed, since a near-duplicate is always linked to a first owner.

- ``near_dup_signatures``: the full MinHash signature of each indexed sample (``num_perm`` uint32,
  little-endian), used to verify LSH candidates by their estimated Jaccard similarity.
- ``near_dup_bands``: one row per (band key, sample). A band key mixes the band's rows of the
  signature with the band number and the parameters hash, so keys of different indexes never meet.
  Lookups are ``band_key IN (...)`` over a batch of records. This table is an index, rewritten
  only by ingestion; it has no foreign key to ``samples`` on purpose, because a per-row FK check
  would double the cost of the 20 rows written per sample (``near_dup_signatures`` keeps the FK).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, LargeBinary, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db.base import Base, IdType, JsonType, created_at_column, foreign_id, primary_id

__all__ = ["NearDupBand", "NearDupIndex", "NearDupSignature"]


class NearDupIndex(Base):
    __tablename__ = "near_dup_indexes"

    id: Mapped[int] = primary_id()
    params_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    params: Mapped[dict[str, object]] = mapped_column(JsonType)
    created_at: Mapped[dt.datetime] = created_at_column()


class NearDupSignature(Base):
    __tablename__ = "near_dup_signatures"
    # sample_id first: the primary key also serves the foreign key and the lookups by sample.
    __table_args__ = (PrimaryKeyConstraint("sample_id", "index_id"),)

    sample_id: Mapped[int] = foreign_id("samples.id")
    index_id: Mapped[int] = foreign_id("near_dup_indexes.id")
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class NearDupBand(Base):
    __tablename__ = "near_dup_bands"
    __table_args__ = (PrimaryKeyConstraint("band_key", "sample_id"), {"sqlite_with_rowid": False})

    band_key: Mapped[int] = mapped_column(BigInteger)
    sample_id: Mapped[int] = mapped_column(IdType)
