"""The embedding store's compact key index and its reads agree with a plain dict of every key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marketplace.approx import embedding_store
from marketplace.approx.embedding_store import EmbeddingStore
from marketplace.errors import ManifestMismatchError, ValidationError

DIM = 4


def _store(root: Path) -> EmbeddingStore:
    return EmbeddingStore(root, "k", {"encoder_digest": "test"}, DIM, dtype="float32")


def test_index_merges_keep_first_shard_wins_and_match_a_dict(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(embedding_store._KeyIndex, "MERGE_AT", 7)  # many merges on a small store
    rng = np.random.default_rng(0)
    store = _store(tmp_path)
    oracle: dict[str, np.ndarray] = {}
    universe = [f"{i:064x}" if i % 3 else f"short-{i}" for i in range(400)]
    for _ in range(30):
        keys = list(rng.choice(universe, size=int(rng.integers(1, 40)), replace=True))
        vectors = rng.normal(size=(len(keys), DIM)).astype(np.float32)
        store.put(keys, vectors)
        for k, v in zip(keys, vectors, strict=True):
            oracle.setdefault(k, v)  # the first shard, and the first row within it, wins
    assert len(store) == len(oracle)
    assert store._index._keys.size > 0, "the test must exercise merged keys"
    probe = list(rng.choice(universe, size=300, replace=True))
    np.testing.assert_array_equal(store.contains(probe), [k in oracle for k in probe])
    cached = [k for k in probe if k in oracle]
    np.testing.assert_array_equal(store.get(cached), np.stack([oracle[k] for k in cached]))
    # a second process opening the folder sees the same
    other = _store(tmp_path)
    np.testing.assert_array_equal(other.get(cached), np.stack([oracle[k] for k in cached]))
    missing = next(k for k in universe if k not in oracle) if len(oracle) < len(universe) else None
    if missing is not None:
        with pytest.raises(ValidationError, match="not cached"):
            store.get([missing])


def test_dense_and_sparse_reads_of_one_large_shard(tmp_path: Path) -> None:
    store = _store(tmp_path)
    keys = [f"key-{i}" for i in range(1000)]
    vectors = np.arange(1000 * DIM, dtype=np.float32).reshape(1000, DIM)
    store.put(keys, vectors)
    dense = [f"key-{i}" for i in range(200, 260)][::-1]
    sparse = ["key-999", "key-0", "key-500"]
    np.testing.assert_array_equal(store.get(dense), vectors[[int(k[4:]) for k in dense]])
    np.testing.assert_array_equal(store.get(sparse), vectors[[999, 0, 500]])
    assert store.get([]).shape == (0, DIM)


def test_keys_that_do_not_fit_and_truncated_shards_are_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(ValidationError, match="at most 64"):
        store.contains(["x" * 65])
    with pytest.raises(ValidationError, match="ASCII"):
        store.contains(["clé"])
    path = store.put(["a", "b"], np.ones((2, DIM), dtype=np.float32))
    assert path is not None
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ManifestMismatchError, match="truncated"):
        _store(tmp_path).contains(["a"])


def test_reads_stay_right_while_another_thread_adds_shards(tmp_path: Path, monkeypatch) -> None:
    """Shard tasks share one store: a reader must never see a merge half done."""
    import threading

    monkeypatch.setattr(embedding_store._KeyIndex, "MERGE_AT", 5)
    store = _store(tmp_path)
    base = [f"base-{i}" for i in range(50)]
    vectors = np.arange(50 * DIM, dtype=np.float32).reshape(50, DIM)
    store.put(base, vectors)
    stop, errors = threading.Event(), []

    def writer() -> None:
        for j in range(200):
            store.put([f"w{j}-{i}" for i in range(7)], np.full((7, DIM), -1.0, dtype=np.float32))
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            got = store.get(base)
            if not np.array_equal(got, vectors):
                errors.append("a cached vector changed while shards were added")
                return

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store) == 50 + 200 * 7
