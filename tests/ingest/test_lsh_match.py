"""The vectorised near-duplicate decision and the in-memory index tail against slow, obvious versions.

Random batches over a tiny key space and a tiny slot alphabet, so that band collisions, similarities
on both sides of the threshold, ties between candidates and chains inside a batch are all common.
"""

from __future__ import annotations

import numpy as np

from marketplace.ingest.lsh_match import IndexedCandidates, NearLink, best_indexed, match_batch
from marketplace.ingest.pending_index import PendingIndex

P, BANDS, THRESHOLD = 16, 4, 0.5


def _random_batch(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sigs = rng.integers(0, 3, size=(n, P)).astype(np.uint32)
    has_sig = rng.random(n) > 0.1
    keys = rng.integers(0, 40, size=(n, BANDS)).astype(np.int64)
    return sigs, has_sig, keys


def _indexed(rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.sort(rng.choice(np.arange(1, 10 * m + 1), size=m, replace=False)).astype(np.int64)
    sigs = rng.integers(0, 3, size=(m, P)).astype(np.uint32)
    keys = rng.integers(0, 40, size=(m, BANDS)).astype(np.int64)
    return ids, sigs, keys


def _candidates(ids: np.ndarray, sigs: np.ndarray, keys: np.ndarray, query: np.ndarray) -> IndexedCandidates:
    """What the database returns: every band row whose key is queried, and the signatures they name."""
    wanted = set(query.ravel().tolist())
    pairs = [(int(k), int(sid)) for sid, row in zip(ids, keys, strict=True) for k in row if int(k) in wanted]
    hit_ids = np.asarray([s for _, s in pairs], dtype=np.int64)
    named = np.isin(ids, hit_ids)
    return IndexedCandidates(np.asarray([k for k, _ in pairs], dtype=np.int64), hit_ids, ids[named], sigs[named])


def _reference_links(sigs: np.ndarray, has_sig: np.ndarray, keys: np.ndarray, ids: np.ndarray,
                     index_sigs: np.ndarray, index_keys: np.ndarray, threshold: float) -> list[NearLink]:
    """Row by row: the most similar indexed sample sharing a band key (smallest id on ties), replaced by
    an earlier unlinked row of the batch sharing a band key only when strictly more similar."""
    links: list[NearLink] = []
    unlinked: list[int] = []
    for row in range(sigs.shape[0]):
        if not has_sig[row]:
            continue
        mine = set(keys[row].tolist())
        best: NearLink | None = None
        for j in np.argsort(ids).tolist():
            if mine & set(index_keys[j].tolist()):
                sim = float((index_sigs[j] == sigs[row]).mean())
                if sim >= threshold and (best is None or sim > best.similarity):
                    best = NearLink(row, int(ids[j]), None, sim)
        for earlier in unlinked:
            if mine & set(keys[earlier].tolist()):
                sim = float((sigs[earlier] == sigs[row]).mean())
                if sim >= threshold and (best is None or sim > best.similarity):
                    best = NearLink(row, None, earlier, sim)
        if best is None:
            unlinked.append(row)
        else:
            links.append(best)
    return links


def test_match_batch_equals_the_row_by_row_rule() -> None:
    kinds = {"indexed": 0, "in batch": 0}
    for seed in range(60):
        rng = np.random.default_rng(seed)
        sigs, has_sig, keys = _random_batch(rng, int(rng.integers(1, 80)))
        ids, index_sigs, index_keys = _indexed(rng, int(rng.integers(0, 50)))
        cands = _candidates(ids, index_sigs, index_keys, keys[has_sig])
        expected = _reference_links(sigs, has_sig, keys, ids, index_sigs, index_keys, THRESHOLD)
        assert match_batch(sigs, has_sig, keys, cands, THRESHOLD) == expected, f"seed {seed}"
        for link in expected:
            kinds["indexed" if link.sample_id is not None else "in batch"] += 1
    assert min(kinds.values()) > 50, kinds  # both kinds of link were exercised


def test_a_band_row_without_a_signature_is_no_candidate() -> None:
    sigs = np.ones((1, P), dtype=np.uint32)
    keys = np.full((1, BANDS), 7, dtype=np.int64)
    cands = IndexedCandidates(np.array([7, 7]), np.array([3, 5]), np.array([5]), np.ones((1, P), dtype=np.uint32))
    sims, ids = best_indexed(keys, np.array([True]), sigs, cands)
    assert (sims.tolist(), ids.tolist()) == ([1.0], [5])


def test_the_pending_tail_finds_exactly_what_a_scan_finds() -> None:
    rng = np.random.default_rng(7)
    pending = PendingIndex(P, BANDS)
    all_ids, all_sigs, all_keys = [], [], []
    next_id = 1
    for _ in range(23):  # enough batches to merge runs several times
        k = int(rng.integers(0, 30))
        ids = np.arange(next_id, next_id + k, dtype=np.int64)
        next_id += k + int(rng.integers(0, 3))
        sigs = rng.integers(0, 3, size=(k, P)).astype(np.uint32)
        keys = rng.integers(0, 500, size=(k, BANDS)).astype(np.int64)
        pending.add(ids, sigs, keys)
        all_ids.append(ids), all_sigs.append(sigs), all_keys.append(keys)
        ids_, sigs_, keys_ = (np.concatenate(a) for a in (all_ids, all_sigs, all_keys))
        query = np.unique(rng.integers(0, 500, size=60))
        got = pending.candidates(query)
        want = _candidates(ids_, sigs_, keys_, query)
        assert sorted(zip(got.hit_keys.tolist(), got.hit_ids.tolist(), strict=True)) == sorted(
            zip(want.hit_keys.tolist(), want.hit_ids.tolist(), strict=True))
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.sigs, want.sigs)
    assert pending.n == sum(a.shape[0] for a in all_ids)
    ids, sigs, band_keys, band_ids = pending.drain()
    np.testing.assert_array_equal(ids, np.concatenate(all_ids))
    np.testing.assert_array_equal(sigs, np.concatenate(all_sigs))
    expected = sorted((int(k), int(i)) for i, row in zip(ids, np.concatenate(all_keys), strict=True) for k in row)
    assert np.all(np.diff(band_keys) >= 0)
    assert sorted(zip(band_keys.tolist(), band_ids.tolist(), strict=True)) == expected
    assert pending.n == 0 and pending.candidates(np.arange(500)).ids.size == 0
