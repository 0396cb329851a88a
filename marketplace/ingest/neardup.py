"""The persistent near-duplicate index in the caller's session: lookups and additions, in batches.

:class:`NearDupIndexStore` is bound to one :class:`~marketplace.ingest.params.DedupParams` (one row of
``near_dup_indexes``). For a batch of candidate first owners, :meth:`NearDupIndexStore.link` returns
which of them are near-duplicates of an indexed sample or of an earlier record of the same batch
(the rule: :mod:`marketplace.ingest.lsh_match`); :meth:`NearDupIndexStore.add` indexes the ones that
stay first owners. New entries are held in memory (:mod:`marketplace.ingest.pending_index`, up to
``pending_bytes``) and written by :meth:`NearDupIndexStore.flush` in one sorted bulk insert, when
the budget is spent and at the end of the file; lookups read both the database and that tail. The
database sees, per batch and per flush:

- a lookup is one statement per ``_LOOKUP_CHUNK`` distinct band keys (one for the default batch
  size). On PostgreSQL it returns a single row of two ``bytea`` values in binary format: the band
  rows found (``int8send`` pairs) and the signatures of the samples they name, so a batch's
  candidates cost one round trip and no Python object per row. On SQLite (in-process, no round
  trip) it is a ``band_key IN json_each(?)`` query plus a signature fetch.
- a flush is one bulk insert per table: a binary ``COPY`` assembled by numpy on PostgreSQL,
  ``executemany`` on SQLite, band rows sorted by key so the B-tree is written in order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marketplace.db.dedup import NearDupBand, NearDupIndex, NearDupSignature
from marketplace.ingest.bulk import bulk_insert, copy_fixed_width, fetch_row_binary, in_list, in_list_param
from marketplace.ingest.lsh_match import IndexedCandidates, NearLink, match_batch, shared_keys
from marketplace.ingest.minhash import MinHasher
from marketplace.ingest.params import DedupParams
from marketplace.ingest.pending_index import PendingIndex

__all__ = ["PENDING_BYTES", "NearDupIndexStore", "NearLink"]

log = logging.getLogger(__name__)
PENDING_BYTES = 128 * 2**20  # memory for index entries not written yet (~176,000 samples by default)
_LOOKUP_CHUNK = 500_000  # distinct band keys per query (a write group of 20,000 records has up to 400,000)
_SIGNATURES = cast(Table, NearDupSignature.__table__)
_BANDS = cast(Table, NearDupBand.__table__)
# PostgreSQL: the band rows matching a list of keys and the signatures of their samples, as two
# binary strings. MATERIALIZED: the band lookup runs once, both aggregates read its result. The
# key list (a binary BIGINT[]) sits in a sub-select so the planner does not estimate it key by key
# (see bulk.in_list).
_PG_CANDIDATES = """
WITH hits AS MATERIALIZED (
    SELECT band_key, sample_id FROM near_dup_bands
     WHERE band_key = ANY((SELECT %(keys)s::BIGINT[])::BIGINT[])
)
SELECT (SELECT string_agg(int8send(band_key) || int8send(sample_id), ''::bytea) FROM hits),
       (SELECT string_agg(int8send(s.sample_id) || s.signature, ''::bytea)
          FROM near_dup_signatures s
         WHERE s.index_id = %(index_id)s AND s.sample_id IN (SELECT DISTINCT sample_id FROM hits))
"""
_PAIR = np.dtype([("key", ">i8"), ("id", ">i8")])


class NearDupIndexStore:
    """The index of one parameter set in one transaction. Call :meth:`flush` before the transaction
    ends: entries added since the last flush are only in memory until then."""

    def __init__(self, session: Session, params: DedupParams, *, pending_bytes: int | None = None) -> None:
        self.session = session
        self.params = params
        self.hasher = MinHasher(params)
        self.index_id = self._get_or_create_index()
        budget = PENDING_BYTES if pending_bytes is None else pending_bytes
        self.max_pending = max(1, budget // PendingIndex.bytes_per_sample(params.num_perm, params.bands))
        self.pending = PendingIndex(params.num_perm, params.bands, expected_samples=self.max_pending)

    def _get_or_create_index(self) -> int:
        digest = self.params.sha256()
        stmt = select(NearDupIndex.id).where(NearDupIndex.params_sha256 == digest)
        found = self.session.execute(stmt).scalar_one_or_none()
        if found is not None:
            return int(found)
        try:
            with self.session.begin_nested():  # a concurrent ingest may create it first
                return int(self.session.execute(
                    insert(NearDupIndex).values(params_sha256=digest, params=self.params.model_dump(mode="json"))
                    .returning(NearDupIndex.id)
                ).scalar_one())
        except IntegrityError:
            return int(self.session.execute(stmt).scalar_one())

    # ---- signatures ----
    def signatures(self, texts: Sequence[str]) -> tuple[NDArray[np.uint32], NDArray[np.bool_], NDArray[np.int64]]:
        """``(n, P)`` signatures, ``(n,)`` has-shingles mask and ``(n, bands)`` band keys."""
        shingles, counts = self.hasher.shingle_hashes(texts)
        sigs = self.hasher.signatures_from_shingles(shingles, counts)
        return sigs, counts > 0, self.hasher.band_keys(sigs)

    # ---- lookups ----
    def _candidates_pg(self, keys: NDArray[np.int64]) -> IndexedCandidates:
        """One round trip: the band rows whose key is in ``keys`` (1-D, unique) and their signatures."""
        pairs_blob, sigs_blob = fetch_row_binary(
            self.session, _PG_CANDIDATES,
            {"keys": keys, "index_id": self.index_id})
        pairs = np.frombuffer(pairs_blob or b"", dtype=_PAIR)
        width = 4 * self.params.num_perm
        rec = np.frombuffer(sigs_blob or b"", dtype=np.dtype([("id", ">i8"), ("sig", "<u4", (self.params.num_perm,))]))
        if len(sigs_blob or b"") != rec.shape[0] * (8 + width):  # pragma: no cover - a damaged index
            raise ValueError(f"near_dup_signatures of index {self.index_id} are not {width} bytes long")
        return IndexedCandidates(pairs["key"].astype(np.int64), pairs["id"].astype(np.int64),
                                 rec["id"].astype(np.int64), rec["sig"].astype(np.uint32))

    def _candidates_rows(self, keys: NDArray[np.int64]) -> IndexedCandidates:
        """Two queries (any dialect): the band rows whose key is in ``keys``, then their signatures."""
        stmt = select(NearDupBand.band_key, NearDupBand.sample_id).where(
            in_list(self.session, NearDupBand.band_key, integer=True))
        hits = self.session.execute(stmt, in_list_param(self.session, keys.tolist())).all()
        hit_keys = np.asarray([k for k, _ in hits], dtype=np.int64)
        hit_ids = np.asarray([i for _, i in hits], dtype=np.int64)
        ids = np.unique(hit_ids)
        sig_stmt = select(NearDupSignature.sample_id, NearDupSignature.signature).where(
            NearDupSignature.index_id == self.index_id,
            in_list(self.session, NearDupSignature.sample_id, integer=True),
        )
        found = dict(self.session.execute(sig_stmt, in_list_param(self.session, ids.tolist())).tuples().all())
        ids = np.asarray(sorted(int(i) for i in found), dtype=np.int64)
        sigs = (np.stack([np.frombuffer(found[i], dtype="<u4") for i in ids.tolist()]).astype(np.uint32)
                if ids.size else np.zeros((0, self.params.num_perm), dtype=np.uint32))
        return IndexedCandidates(hit_keys, hit_ids, ids, sigs)

    def candidates(self, uniq: NDArray[np.int64]) -> IndexedCandidates:
        """Indexed samples sharing a band key with ``uniq`` (1-D, sorted, distinct), with their
        signatures: those written to the database and those still pending."""
        if uniq.size == 0:
            return IndexedCandidates.empty(self.params.num_perm)
        fetch = self._candidates_pg if self.session.get_bind().dialect.name == "postgresql" else self._candidates_rows
        parts = [fetch(uniq[start : start + _LOOKUP_CHUNK]) for start in range(0, uniq.size, _LOOKUP_CHUNK)]
        parts.append(self.pending.candidates(uniq))
        ids = np.concatenate([p.ids for p in parts])
        sigs = np.concatenate([p.sigs for p in parts])
        ids, first = np.unique(ids, return_index=True)  # a sample found by two chunks comes twice
        return IndexedCandidates(np.concatenate([p.hit_keys for p in parts]),
                                 np.concatenate([p.hit_ids for p in parts]), ids, sigs[first])

    def link(self, sigs: NDArray[np.uint32], has_sig: NDArray[np.bool_], keys: NDArray[np.int64]) -> list[NearLink]:
        """Near-duplicate links for the rows of a batch of would-be first owners, in row order.

        ``sigs``: ``(n, P)``, ``has_sig``: ``(n,)``, ``keys``: ``(n, bands)``; the rule is
        :func:`marketplace.ingest.lsh_match.match_batch`'s.
        """
        if sigs.shape[0] == 0:
            return []
        lookup, shared = shared_keys(keys, has_sig)
        return match_batch(sigs, has_sig, keys, self.candidates(lookup), self.params.threshold, shared)

    # ---- additions ----
    def add(self, sample_ids: Sequence[int], sigs: NDArray[np.uint32], keys: NDArray[np.int64]) -> None:
        """Index first owners: ``sigs`` ``(k, P)`` uint32 and ``keys`` ``(k, bands)`` int64 in the order
        of ``sample_ids``. Held in memory; written when the pending budget is spent or by :meth:`flush`."""
        if not sample_ids:
            return
        self.pending.add(np.asarray(sample_ids, dtype=np.int64), sigs, keys)
        if self.pending.n >= self.max_pending:
            self.flush()

    def flush(self) -> None:
        """Write every pending entry: one signature row and ``bands`` band rows per sample."""
        if self.pending.n == 0:
            return
        ids, sigs, band_keys, band_ids = self.pending.drain()  # band rows in key order: local B-tree writes
        log.debug("near-duplicate index %d: writing %d samples", self.index_id, ids.shape[0])
        sig_bytes = np.ascontiguousarray(sigs, dtype="<u4").view(np.uint8)  # (k, 4P): the stored bytes
        if self.session.get_bind().dialect.name == "postgresql":
            index_ids = np.full(ids.shape[0], self.index_id, dtype=np.int64)
            copy_fixed_width(self.session, _SIGNATURES, ("sample_id", "index_id", "signature"),
                             (ids, index_ids, sig_bytes))
            copy_fixed_width(self.session, _BANDS, ("band_key", "sample_id"), (band_keys, band_ids))
            return
        bulk_insert(self.session, _SIGNATURES, ("sample_id", "index_id", "signature"),
                    [(sid, self.index_id, row.tobytes()) for sid, row in zip(ids.tolist(), sig_bytes, strict=True)])
        bulk_insert(self.session, _BANDS, ("band_key", "sample_id"),
                    list(zip(band_keys.tolist(), band_ids.tolist(), strict=True)))
