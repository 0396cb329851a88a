"""First owners an ingest has indexed but not written yet: the in-memory tail of the near-duplicate index.

A file's own earlier records are, for a large file, most of its near-duplicate candidates. Writing
their band rows as each batch goes and reading them back for the next batch costs a B-tree probe per
band key and a signature fetch per candidate; holding them in memory until a flush costs a binary
search. :class:`~marketplace.ingest.neardup.NearDupIndexStore` asks this tail and the database for
every lookup, so the candidates (and so the links) are exactly those of an index written row by
row; it flushes the tail in one sorted bulk insert when it is full and at the end of the file,
inside the same transaction (nothing is visible to anyone before COMMIT either way).

Memory: one signature (``4 * num_perm`` bytes), the id and one sorted (key, row) pair per band
(``12 * bands`` bytes) per sample: 760 bytes with the default parameters.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from marketplace.ingest.lsh_match import IndexedCandidates, key_ranges

__all__ = ["PendingIndex"]


def _expand(sorted_keys: NDArray[np.int64], values: NDArray[np.integer],
            query: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.integer]]:
    """Every ``(key, value)`` of the key-sorted pairs whose key is in ``query``: two ``(h,)`` arrays."""
    _, lo, counts = key_ranges(sorted_keys, query)
    if lo.size == 0:
        return np.zeros(0, dtype=np.int64), values[:0]
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    idx = np.repeat(lo, counts) + within
    return sorted_keys[idx], values[idx]


class PendingIndex:
    """Samples (ids, ``(P,)`` signatures, ``(bands,)`` band keys) held until :meth:`drain`.

    Band keys are kept only as sorted runs of (key, row) pairs, merged so that no run is smaller
    than half the next older one: at most ~log2(samples) runs to search, each pair re-sorted
    ~log2 times, and a drain hands the band rows over in key order without sorting them again.
    """

    def __init__(self, num_perm: int, bands: int, expected_samples: int = 1 << 20) -> None:
        """``expected_samples``: the most the caller holds before a :meth:`drain` (the buffers never
        grow past it by doubling, only to what an :meth:`add` needs)."""
        self.num_perm = num_perm
        self.bands = bands
        self.expected_samples = expected_samples
        self._row_dtype = np.int32 if expected_samples < 2**30 else np.int64
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self._ids = np.zeros(0, dtype=np.int64)  # (capacity,)
        self._sigs = np.zeros((0, self.num_perm), dtype=np.uint32)  # (capacity, P)
        self._runs: list[tuple[NDArray[np.int64], NDArray[np.integer]]] = []  # (keys sorted, rows)

    @staticmethod
    def bytes_per_sample(num_perm: int, bands: int) -> int:
        """Memory held per pending sample: signature, id and one (key, row) pair per band."""
        return 4 * num_perm + 12 * bands + 8

    def _grow(self, needed: int) -> None:
        if needed <= self._ids.shape[0]:
            return
        if needed >= np.iinfo(self._row_dtype).max:
            raise ValueError(f"{needed} pending samples: more than expected_samples={self.expected_samples} allows")
        capacity = max(needed, min(max(2 * self._ids.shape[0], 1024), self.expected_samples))
        for name in ("_ids", "_sigs"):
            old = getattr(self, name)
            new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def add(self, ids: NDArray[np.int64], sigs: NDArray[np.uint32], keys: NDArray[np.int64]) -> None:
        """Hold ``k`` samples: ``ids`` ``(k,)``, ``sigs`` ``(k, P)``, ``keys`` ``(k, bands)``."""
        k = ids.shape[0]
        if k == 0:
            return
        self._grow(self.n + k)
        self._ids[self.n : self.n + k] = ids
        self._sigs[self.n : self.n + k] = sigs
        flat = keys.ravel()
        order = np.argsort(flat, kind="stable")
        rows = np.repeat(np.arange(self.n, self.n + k, dtype=self._row_dtype), self.bands)
        self._runs.append((flat[order], rows[order]))
        self.n += k
        while len(self._runs) > 1 and self._runs[-2][0].size <= 2 * self._runs[-1][0].size:
            self._merge_last_two()

    def _merge_last_two(self) -> None:
        (k1, r1), (k2, r2) = self._runs.pop(), self._runs.pop()
        merged_keys = np.concatenate((k2, k1))
        order = np.argsort(merged_keys, kind="stable")  # two sorted runs: timsort merges them
        self._runs.append((merged_keys[order], np.concatenate((r2, r1))[order]))

    def candidates(self, query: NDArray[np.int64]) -> IndexedCandidates:
        """The held samples sharing a key with ``query`` (1-D, sorted, unique)."""
        if self.n == 0 or query.size == 0:
            return IndexedCandidates.empty(self.num_perm)
        found = [_expand(run_keys, run_rows, query) for run_keys, run_rows in self._runs]
        hit_keys = np.concatenate([f[0] for f in found])
        hit_rows = np.concatenate([f[1] for f in found])
        rows = np.unique(hit_rows)
        ids = self._ids[rows]
        order = np.argsort(ids, kind="stable")
        return IndexedCandidates(hit_keys, self._ids[hit_rows], ids[order], self._sigs[rows[order]])

    def drain(self) -> tuple[NDArray[np.int64], NDArray[np.uint32], NDArray[np.int64], NDArray[np.int64]]:
        """Everything held, then empty: ids ``(k,)`` and signatures ``(k, P)`` in the order added,
        and the band rows ``(k * bands,)`` keys and sample ids, sorted by key."""
        while len(self._runs) > 1:
            self._merge_last_two()
        band_keys, band_rows = self._runs[0] if self._runs else (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=int))
        out = (self._ids[: self.n], self._sigs[: self.n], band_keys, self._ids[band_rows])  # views of buffers let go
        self._reset()
        return out
