"""Which records of a batch are near-duplicates: LSH candidates verified on the full MinHash signature.

Pure numpy over one batch (no database): :mod:`marketplace.ingest.neardup` fetches the indexed
samples that share a band key with the batch (:class:`IndexedCandidates`) and :func:`match_batch`
decides. The rule:

- a row is linked to its most similar candidate whose estimated Jaccard similarity (the fraction of
  equal signature slots) is at least the threshold, among the indexed samples sharing a band with
  it (ties go to the smallest, i.e. oldest, sample id) and the earlier *unlinked* rows of the batch
  sharing a band with it (ties go to the earliest row); an earlier row of the batch wins only when
  it is strictly more similar than the best indexed sample;
- rows without shingles (``has_sig`` False) are never linked and never link others.

The indexed half is decided for all rows at once (one ``(pairs, P)`` comparison); only rows with a
band key shared inside the batch go through the ordered loop, because whether an earlier row can be
linked to depends on whether it was itself linked. ``tests/ingest/test_lsh_match.py`` checks this
against the obvious per-row loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["IndexedCandidates", "NearLink", "best_indexed", "key_ranges", "match_batch", "shared_keys"]

_PAIR_CHUNK = 65536  # candidate pairs compared at once: (65536, 128) bool = 8 MiB


@dataclass(frozen=True, slots=True)
class NearLink:
    """Row ``row`` of the batch is a near-duplicate of sample ``sample_id`` (indexed earlier) or of
    batch row ``batch_row`` (a first owner earlier in the same batch); ``similarity`` is the estimate."""

    row: int
    sample_id: int | None
    batch_row: int | None
    similarity: float


@dataclass(frozen=True)
class IndexedCandidates:
    """Indexed samples sharing a band key with a batch.

    ``hit_keys``, ``hit_ids``: ``(h,)`` int64, one entry per band row found (key, sample id);
    ``ids``: ``(m,)`` int64, sorted, unique, the samples among them that have a signature;
    ``sigs``: ``(m, P)`` uint32, their signatures in the order of ``ids``.
    """

    hit_keys: NDArray[np.int64]
    hit_ids: NDArray[np.int64]
    ids: NDArray[np.int64]
    sigs: NDArray[np.uint32]

    @classmethod
    def empty(cls, num_perm: int) -> IndexedCandidates:
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, np.zeros((0, num_perm), dtype=np.uint32))


def _similarities(a: NDArray[np.uint32], rows_a: NDArray[np.intp], b: NDArray[np.uint32],
                  rows_b: NDArray[np.intp]) -> NDArray[np.float64]:
    """Estimated Jaccard of the pairs ``(a[rows_a[i]], b[rows_b[i]])``: ``(k,)`` float64.

    Equal to ``(x == y).mean()`` bit for bit: a count of equal slots divided by ``P`` in float64.
    """
    out = np.empty(rows_a.shape[0], dtype=np.float64)
    num_perm = a.shape[1]
    for start in range(0, rows_a.shape[0], _PAIR_CHUNK):
        stop = start + _PAIR_CHUNK
        equal = a[rows_a[start:stop]] == b[rows_b[start:stop]]  # (k, P) bool
        out[start:stop] = np.count_nonzero(equal, axis=1) / num_perm
    return out


def key_ranges(sorted_keys: NDArray[np.int64], query: NDArray[np.int64]) -> tuple[NDArray[np.intp], NDArray[np.intp],
                                                                             NDArray[np.intp]]:
    """Where each key of ``query`` occurs in ``sorted_keys``: the positions in ``query`` of the keys
    found, the first index of each in ``sorted_keys`` and how many times it occurs there.

    One binary search per query key; the second (for the end of a range) only for the keys found,
    which in an LSH lookup are few.
    """
    n = sorted_keys.shape[0]
    lo = np.searchsorted(sorted_keys, query, side="left")
    found = np.flatnonzero(sorted_keys[np.minimum(lo, max(n - 1, 0))] == query) if n else np.zeros(0, np.intp)
    lo = lo[found]
    counts = np.searchsorted(sorted_keys, query[found], side="right") - lo
    return found, lo, counts


def best_indexed(keys: NDArray[np.int64], has_sig: NDArray[np.bool_], sigs: NDArray[np.uint32],
                 cands: IndexedCandidates) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """For every row, the most similar indexed candidate sharing a band key with it.

    ``keys``: ``(n, bands)`` band keys, ``has_sig``: ``(n,)``, ``sigs``: ``(n, P)``. Returns ``(n,)``
    similarities (-1.0 where the row has no candidate) and ``(n,)`` sample ids (-1 where none);
    among equally similar candidates the smallest id wins.
    """
    n = keys.shape[0]
    best_sim = np.full(n, -1.0)
    best_id = np.full(n, -1, dtype=np.int64)
    m = cands.ids.shape[0]
    if m == 0 or cands.hit_keys.size == 0:
        return best_sim, best_id
    order = np.argsort(cands.hit_keys, kind="stable")
    hit_keys, hit_ids = cands.hit_keys[order], cands.hit_ids[order]
    rows = np.flatnonzero(has_sig)
    flat_keys = keys[rows].ravel()  # (r * bands,)
    flat_rows = np.repeat(rows, keys.shape[1])
    found, lo, counts = key_ranges(hit_keys, flat_keys)
    flat_rows = flat_rows[found]
    # Every (row, hit) pair: hit j of key i is hit_keys[lo[i] + j], j < counts[i].
    pair_rows = np.repeat(flat_rows, counts)
    within = np.arange(pair_rows.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    pair_ids = hit_ids[np.repeat(lo, counts) + within]
    pos = np.searchsorted(cands.ids, pair_ids)
    pos_ok = np.minimum(pos, m - 1)
    known = cands.ids[pos_ok] == pair_ids  # a band row without a signature is no candidate
    # One entry per (row, candidate), sorted by row then candidate id.
    code = np.unique(pair_rows[known].astype(np.int64) * m + pos_ok[known])
    pair_rows, pos = code // m, code % m
    sims = _similarities(cands.sigs, pos, sigs, pair_rows)
    # Per row: the highest similarity, then the smallest id (pos follows id order).
    order = np.lexsort((pos, -sims, pair_rows))
    pair_rows, pos, sims = pair_rows[order], pos[order], sims[order]
    first = np.ones(pair_rows.shape[0], dtype=bool)
    first[1:] = pair_rows[1:] != pair_rows[:-1]
    best_sim[pair_rows[first]] = sims[first]
    best_id[pair_rows[first]] = cands.ids[pos[first]]
    return best_sim, best_id


def shared_keys(keys: NDArray[np.int64], has_sig: NDArray[np.bool_]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The distinct band keys of the rows with a signature (sorted) and those of them that two or
    more such rows share (sorted): the batch's lookup keys and its in-batch candidates' keys."""
    uniq, counts = np.unique(keys[has_sig].ravel(), return_counts=True)
    return uniq, uniq[counts > 1]


def match_batch(sigs: NDArray[np.uint32], has_sig: NDArray[np.bool_], keys: NDArray[np.int64],
                cands: IndexedCandidates, threshold: float, shared: NDArray[np.int64] | None = None) -> list[NearLink]:
    """Near-duplicate links of a batch of would-be first owners, in row order (rule: module docstring).

    ``sigs``: ``(n, P)`` uint32, ``has_sig``: ``(n,)`` bool, ``keys``: ``(n, bands)`` int64;
    ``shared``: :func:`shared_keys`'s second array, if the caller has it.
    """
    n = sigs.shape[0]
    if n == 0:
        return []
    best_sim, best_id = best_indexed(keys, has_sig, sigs, cands)
    indexed_ok = best_sim >= threshold
    # In-batch candidates: keys shared by two or more rows of the batch.
    if shared is None:
        shared = shared_keys(keys, has_sig)[1]
    in_shared = np.zeros(keys.size, dtype=bool)
    in_shared[key_ranges(shared, keys.ravel())[0]] = True
    shared_mask = in_shared.reshape(keys.shape) & has_sig[:, None]  # (n, bands)
    in_batch = shared_mask.any(axis=1)
    links = [NearLink(int(row), int(best_id[row]), None, float(best_sim[row]))
             for row in np.flatnonzero(indexed_ok & ~in_batch).tolist()]
    bucket: dict[int, list[int]] = {}  # shared key -> earlier unlinked rows of this batch
    for row in np.flatnonzero(in_batch).tolist():
        row_shared = keys[row][shared_mask[row]].tolist()
        link = NearLink(row, int(best_id[row]), None, float(best_sim[row])) if indexed_ok[row] else None
        batch_cands = sorted({r for k in row_shared for r in bucket.get(k, ())})
        if batch_cands:
            sims = _similarities(sigs, np.asarray(batch_cands, dtype=np.intp), sigs,
                                 np.full(len(batch_cands), row, dtype=np.intp))
            i = int(np.argmax(sims))  # first maximum = earliest row
            if sims[i] >= threshold and (link is None or sims[i] > link.similarity):
                link = NearLink(row, None, batch_cands[i], float(sims[i]))
        if link is not None:
            links.append(link)
            continue
        for k in row_shared:
            bucket.setdefault(k, []).append(row)
    links.sort(key=lambda nl: nl.row)
    return links
