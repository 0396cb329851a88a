"""The persistent near-duplicate index in the caller's session: lookups and additions, in batches.

:class:`NearDupIndexStore` is bound to one :class:`~marketplace.ingest.params.DedupParams` (one row of
``near_dup_indexes``). For a batch of candidate first owners, :meth:`NearDupIndexStore.link` returns
which of them are near-duplicates of an indexed sample or of an earlier record of the same batch;
:meth:`NearDupIndexStore.add` indexes the ones that stay first owners. Both go to the database once
per batch: a lookup is one ``band_key IN (...)`` query (``= ANY(array)`` on PostgreSQL,
``json_each`` on SQLite, so the statement has a single parameter) plus one signature fetch; an
addition is one bulk insert (``COPY`` on PostgreSQL, ``executemany`` on SQLite).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marketplace.db.dedup import NearDupBand, NearDupIndex, NearDupSignature
from marketplace.ingest.bulk import bulk_insert, bulk_insert_int_pairs, in_list, in_list_param
from marketplace.ingest.minhash import MinHasher
from marketplace.ingest.params import DedupParams

__all__ = ["NearDupIndexStore", "NearLink"]

log = logging.getLogger(__name__)
_LOOKUP_CHUNK = 50_000  # band keys per query
_SIGNATURES = cast(Table, NearDupSignature.__table__)
_BANDS = cast(Table, NearDupBand.__table__)


@dataclass(frozen=True, slots=True)
class NearLink:
    """Row ``row`` of the batch is a near-duplicate of sample ``sample_id`` (indexed earlier) or of
    batch row ``batch_row`` (a first owner earlier in the same batch); ``similarity`` is the estimate."""

    row: int
    sample_id: int | None
    batch_row: int | None
    similarity: float


class NearDupIndexStore:
    def __init__(self, session: Session, params: DedupParams) -> None:
        self.session = session
        self.params = params
        self.hasher = MinHasher(params)
        self.index_id = self._get_or_create_index()

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
    def _lookup_bands(self, keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Indexed ``(band_key, sample_id)`` pairs whose key is in ``keys`` (1-D)."""
        uniq = np.unique(keys)
        out_keys: list[int] = []
        out_ids: list[int] = []
        stmt = select(NearDupBand.band_key, NearDupBand.sample_id).where(
            in_list(self.session, NearDupBand.band_key, integer=True))
        for start in range(0, uniq.size, _LOOKUP_CHUNK):
            params = in_list_param(self.session, uniq[start : start + _LOOKUP_CHUNK].tolist())
            for k, sid in self.session.execute(stmt, params):
                out_keys.append(int(k))
                out_ids.append(int(sid))
        return np.asarray(out_keys, dtype=np.int64), np.asarray(out_ids, dtype=np.int64)

    def _fetch_signatures(self, sample_ids: NDArray[np.int64]) -> dict[int, NDArray[np.uint32]]:
        if sample_ids.size == 0:
            return {}
        stmt = select(NearDupSignature.sample_id, NearDupSignature.signature).where(
            NearDupSignature.index_id == self.index_id,
            in_list(self.session, NearDupSignature.sample_id, integer=True),
        )
        out: dict[int, NDArray[np.uint32]] = {}
        ids = sample_ids.tolist()
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            params = in_list_param(self.session, ids[start : start + _LOOKUP_CHUNK])
            for sid, blob in self.session.execute(stmt, params):
                out[int(sid)] = np.frombuffer(blob, dtype="<u4")
        return out

    def link(self, sigs: NDArray[np.uint32], has_sig: NDArray[np.bool_], keys: NDArray[np.int64]) -> list[NearLink]:
        """Near-duplicate links for the rows of a batch of would-be first owners, in row order.

        A row is linked to the most similar candidate (estimated Jaccard >= threshold; ties go to the
        older sample) among indexed samples sharing a band and earlier *unlinked* rows of the batch
        sharing a band. Rows without shingles are never linked.
        """
        n = sigs.shape[0]
        if n == 0:
            return []
        rows_with_sig = np.flatnonzero(has_sig)
        # Indexed candidates: rows whose keys hit the index.
        hit_keys, hit_ids = self._lookup_bands(keys[rows_with_sig].ravel())
        db_cands: dict[int, set[int]] = {}
        if hit_keys.size:
            by_key: dict[int, list[int]] = {}
            for k, sid in zip(hit_keys.tolist(), hit_ids.tolist(), strict=True):
                by_key.setdefault(k, []).append(sid)
            hit_mask = np.isin(keys, hit_keys) & has_sig[:, None]
            for row in np.flatnonzero(hit_mask.any(axis=1)).tolist():
                cands: set[int] = set()
                for k in keys[row][hit_mask[row]].tolist():
                    cands.update(by_key[k])
                db_cands[row] = cands
        # In-batch candidates: keys shared by two or more rows of the batch.
        flat = keys[rows_with_sig].ravel()
        uniq, counts = np.unique(flat, return_counts=True)
        shared_keys = uniq[counts > 1]
        shared_mask = np.isin(keys, shared_keys) & has_sig[:, None]
        needs = np.asarray(shared_mask.any(axis=1), dtype=bool)
        for row in db_cands:
            needs[row] = True
        db_ids = np.asarray(sorted({s for c in db_cands.values() for s in c}), dtype=np.int64)
        fetched = self._fetch_signatures(db_ids)
        # One (m, P) matrix of the candidates' signatures, addressed by position in db_ids.
        db_matrix = np.stack([fetched[s] for s in db_ids.tolist()]) if db_ids.size else sigs[:0]
        threshold = self.params.threshold
        links: list[NearLink] = []
        bucket: dict[int, list[int]] = {}  # shared key -> earlier unlinked rows of this batch
        for row in np.flatnonzero(needs).tolist():
            sig = sigs[row]
            row_shared = keys[row][shared_mask[row]].tolist()
            best: tuple[float, int, int | None, int | None] | None = None  # (sim, -age, sample_id, batch_row)
            cand_ids = db_cands.get(row)
            if cand_ids:
                pos = np.searchsorted(db_ids, sorted(cand_ids))
                sims = (db_matrix[pos] == sig[None, :]).mean(axis=1)
                i = int(np.argmax(sims))  # first maximum = smallest (oldest) sample id
                if sims[i] >= threshold:
                    best = (float(sims[i]), 0, int(db_ids[pos[i]]), None)
            batch_cands = sorted({r for k in row_shared for r in bucket.get(k, ())})
            if batch_cands:
                sims = (sigs[batch_cands] == sig[None, :]).mean(axis=1)
                i = int(np.argmax(sims))
                if sims[i] >= threshold and (best is None or sims[i] > best[0]):
                    best = (float(sims[i]), 1, None, batch_cands[i])
            if best is not None:
                links.append(NearLink(row, best[2], best[3], best[0]))
                continue
            for k in row_shared:
                bucket.setdefault(k, []).append(row)
        return links

    # ---- additions ----
    def add(self, sample_ids: Sequence[int], sigs: NDArray[np.uint32], keys: NDArray[np.int64]) -> None:
        """Index first owners: one signature row and ``bands`` band rows per sample."""
        if not sample_ids:
            return
        ids = np.asarray(sample_ids, dtype=np.int64)
        sig_rows = [(int(sid), self.index_id, sig.astype("<u4").tobytes()) for sid, sig in zip(ids, sigs, strict=True)]
        band_ids = np.repeat(ids, keys.shape[1])
        band_keys = keys.ravel()
        order = np.argsort(band_keys, kind="stable")  # sorted inserts keep B-tree writes local
        band_keys, band_ids = band_keys[order], band_ids[order]
        bulk_insert(self.session, _SIGNATURES, ("sample_id", "index_id", "signature"), sig_rows,
                    pg_types=("int8", "int8", "bytea"))
        bulk_insert_int_pairs(self.session, _BANDS, ("band_key", "sample_id"), band_keys.tolist(), band_ids.tolist())
