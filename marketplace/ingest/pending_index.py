"""First owners an ingest has indexed but not written yet: the in-memory tail of the near-duplicate index.

A file's own earlier records are, for a large file, most of its near-duplicate candidates. Writing
their band rows as each batch goes and reading them back for the next batch costs a B-tree probe per
band key and a signature fetch per candidate; holding them in memory until a flush costs a binary
search. :class:`~marketplace.ingest.neardup.NearDupIndexStore` asks this tail and the database for
every lookup, so the candidates (and so the links) are exactly those of an index written row by
row; it flushes the tail in one sorted bulk insert when it is full and at the end of the file,
inside the same transaction (nothing is visible to anyone before COMMIT either way).

Memory: one signature (``4 * num_perm`` bytes), the band keys and the sorted (key, row) pairs
(``24 * bands`` bytes) per sample: about 1 kB with the default parameters.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from marketplace.ingest.lsh_match import IndexedCandidates

__all__ = ["PendingIndex"]


def _expand(sorted_keys: NDArray[np.int64], values: NDArray[np.int64],
            query: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every ``(key, value)`` of the key-sorted pairs whose key is in ``query``: two ``(h,)`` arrays."""
    lo = np.searchsorted(sorted_keys, query, side="left")
    counts = np.searchsorted(sorted_keys, query, side="right") - lo
    found = counts > 0
    lo, counts = lo[found], counts[found]
    if lo.size == 0:
        none = np.zeros(0, dtype=np.int64)
        return none, none
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    idx = np.repeat(lo, counts) + within
    return sorted_keys[idx], values[idx]


class PendingIndex:
    """Samples (ids, ``(P,)`` signatures, ``(bands,)`` keys) held until :meth:`drain`.

    Band keys are kept as sorted runs of (key, row) pairs, merged so that no run is smaller than
    half the next older one: at most ~log2(samples) runs to search, each pair re-sorted ~log2 times.
    """

    def __init__(self, num_perm: int, bands: int, expected_samples: int = 1 << 20) -> None:
        """``expected_samples``: the most the caller holds before a :meth:`drain` (the buffers never
        grow past it by doubling, only to what an :meth:`add` needs)."""
        self.num_perm = num_perm
        self.bands = bands
        self.expected_samples = expected_samples
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self._ids = np.zeros(0, dtype=np.int64)  # (capacity,)
        self._sigs = np.zeros((0, self.num_perm), dtype=np.uint32)  # (capacity, P)
        self._keys = np.zeros((0, self.bands), dtype=np.int64)  # (capacity, bands)
        self._runs: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []  # (keys sorted, rows)

    @staticmethod
    def bytes_per_sample(num_perm: int, bands: int) -> int:
        """Memory held per pending sample (signature, keys, id, run pairs)."""
        return 4 * num_perm + 24 * bands + 8

    def _grow(self, needed: int) -> None:
        if needed <= self._ids.shape[0]:
            return
        capacity = max(needed, min(max(2 * self._ids.shape[0], 1024), self.expected_samples))
        for name in ("_ids", "_sigs", "_keys"):
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
        self._keys[self.n : self.n + k] = keys
        flat = keys.ravel()
        order = np.argsort(flat, kind="stable")
        rows = np.repeat(np.arange(self.n, self.n + k, dtype=np.int64), self.bands)
        self._runs.append((flat[order], rows[order]))
        self.n += k
        while len(self._runs) > 1 and self._runs[-2][0].size <= 2 * self._runs[-1][0].size:
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

    def drain(self) -> tuple[NDArray[np.int64], NDArray[np.uint32], NDArray[np.int64]]:
        """Everything held (ids ``(k,)``, sigs ``(k, P)``, keys ``(k, bands)``), then empty."""
        out = (self._ids[: self.n], self._sigs[: self.n], self._keys[: self.n])  # views of buffers let go
        self._reset()
        return out
