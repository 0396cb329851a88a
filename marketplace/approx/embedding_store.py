"""A content-addressed cache of sentence embeddings, shared by every campaign.

Layout under ``root/<encoder cache key>/``::

    manifest.json                       encoder digest, embedding config, dim, dtype
    shard-<time>-<uuid>.safetensors     "embeddings" (N, D) float16, "keys" (N, 64) uint8

A key is a sample's content hash (sha256 hex of its normalised content; any string ≤ 64 ASCII
bytes). An embedding depends only on the text and the encoder, never on the campaign, so one cache
serves them all. Shards are written to a temporary name and renamed, so readers never see half a
shard and concurrent writers never collide (a key embedded twice is harmless: the first shard wins).
The manifest is checked on open: a folder written by another encoder or config is refused.

Embeddings are stored as float16 (half the disk and memory traffic of float32; the rounding error,
~1e-3 relative, is far below what changes a ranking) and converted to float32 for arithmetic. A
store opened with ``dtype="float32"`` keeps values exact to 2**24; the token-count cache of
token-weighted scoring (token_factor.py) is one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from marketplace.approx.config import EmbedConfig
from marketplace.approx.encoder import EncoderRef, embedding_cache_key
from marketplace.errors import ManifestMismatchError, ValidationError

__all__ = ["EmbeddingStore", "StoreStats", "open_embedding_store"]

log = logging.getLogger(__name__)

KEY_BYTES = 64
STORE_FORMAT = 1


@dataclass(frozen=True)
class StoreStats:
    n_requested: int
    n_hit: int
    n_computed: int


_ST_DTYPES = {"F16": np.float16, "F32": np.float32, "U8": np.uint8}


@dataclass(frozen=True)
class _Tensor:
    """Where one tensor of a safetensors file lies: its dtype, shape and absolute byte offset."""

    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int

    def read_rows(self, fd: int, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo`` to ``hi - 1`` of a 2-d tensor, read with one ``pread`` (no mapping kept)."""
        row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        raw = os.pread(fd, (hi - lo) * row_bytes, self.offset + lo * row_bytes)
        if len(raw) != (hi - lo) * row_bytes:
            raise ManifestMismatchError("an embedding shard ends early; delete it")
        return np.frombuffer(raw, dtype=self.dtype).reshape(hi - lo, *self.shape[1:])


def _read_header(path: Path) -> dict[str, _Tensor]:
    """The tensors of a safetensors file (an 8-byte little-endian header length, a JSON header with
    dtype, shape and offsets per tensor, then the raw little-endian data), checked against its size."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(header_len))
    base = 8 + header_len
    out: dict[str, _Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _ST_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ManifestMismatchError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        shape = tuple(int(x) for x in info["shape"])
        count = int(np.prod(shape)) if shape else 1
        if end - start != count * np.dtype(dtype).itemsize or base + end > size:
            raise ManifestMismatchError(f"{path}: tensor {name} is truncated; delete the shard")
        out[name] = _Tensor(np.dtype(dtype), shape, base + start)
    return out


class _KeyIndex:
    """key -> location (shard number << 32 | row) for every cached key; the first shard to hold a key wins.

    Held as a sorted ``S64`` array with an aligned location array (about 72 bytes a key), plus a dict of
    the keys of shards added since the last merge; the dict is merged in when it reaches a quarter of the
    sorted part (at least ``MERGE_AT`` keys), so merging costs O(N log N) over the store's whole life.
    A Python dict of every key would cost about four times the memory (250 MB a store at a million).
    """

    MERGE_AT = 65_536

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=f"S{KEY_BYTES}")
        self._locs = np.empty(0, dtype=np.int64)
        self._recent: dict[bytes, int] = {}

    def __len__(self) -> int:
        return int(self._keys.size) + len(self._recent)

    def add(self, keys: np.ndarray, shard_no: int) -> None:
        """keys: (N,) ``S64`` of one shard, in row order."""
        found = self._lookup_sorted(keys)
        for row in np.flatnonzero(found < 0).tolist():
            self._recent.setdefault(bytes(keys[row]), (shard_no << 32) | row)
        if len(self._recent) >= max(self.MERGE_AT, self._keys.size // 4):
            self._merge()

    def _merge(self) -> None:
        """Insert the recent keys into the sorted arrays: one new copy of each, never more (the peak
        memory of a merge is the old arrays, the new ones and the recent keys)."""
        recent = np.array(list(self._recent), dtype=f"S{KEY_BYTES}")
        recent_locs = np.fromiter(self._recent.values(), dtype=np.int64, count=len(self._recent))
        order = np.argsort(recent, kind="stable")
        recent, recent_locs = recent[order], recent_locs[order]
        at = np.searchsorted(self._keys, recent)
        self._keys = np.insert(self._keys, at, recent)
        self._locs = np.insert(self._locs, at, recent_locs)
        self._recent = {}

    def _lookup_sorted(self, keys: np.ndarray) -> np.ndarray:
        if not self._keys.size:
            return np.full(keys.size, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._keys, keys), self._keys.size - 1)
        return np.where(self._keys[pos] == keys, self._locs[pos], -1)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """(N,) locations of ``S64`` keys, -1 where a key is not cached."""
        locs = self._lookup_sorted(keys)
        if self._recent:
            for i in np.flatnonzero(locs < 0).tolist():
                locs[i] = self._recent.get(bytes(keys[i]), -1)
        return locs


def _as_keys(keys: Sequence[str]) -> np.ndarray:
    """(N,) ``S64`` keys; raises ValidationError for a key that is not ASCII of at most 64 bytes."""
    try:
        raw = [k.encode("ascii") for k in keys]
    except UnicodeEncodeError as exc:
        raise ValidationError(f"cache keys are ASCII strings, got {exc.object!r}") from exc
    if any(len(k) > KEY_BYTES for k in raw):
        raise ValidationError(f"cache keys are at most {KEY_BYTES} bytes")
    return np.array(raw, dtype=f"S{KEY_BYTES}")


class EmbeddingStore:
    """Read and extend the cache for one encoder + embedding config (``cache_key``).

    ``manifest`` describes what produced the vectors (encoder digest, embedding config); opening an
    existing folder with a different manifest raises :class:`ManifestMismatchError`. Memory: the key
    index (about 72 bytes a key); vectors are read from their shard files when asked for, and no
    mapping of them is kept, so scoring a million samples does not hold their vectors resident.
    """

    def __init__(self, root: str | Path, cache_key: str, manifest: dict[str, object], dim: int,
                 dtype: str = "float16") -> None:
        if dtype not in ("float16", "float32"):
            raise ValidationError(f"a store keeps float16 or float32 values, not {dtype}")
        self.dir = Path(root) / cache_key
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        self._lock = threading.Lock()
        self._index = _KeyIndex()
        self._shards: list[Path] = []
        self._known: set[Path] = set()
        self._tensors: list[_Tensor] = []
        expected = {"format": STORE_FORMAT, "cache_key": cache_key, "dim": self.dim, "dtype": dtype, **manifest}
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "manifest.json"
        if path.exists():
            found = json.loads(path.read_text(encoding="utf-8"))
            if found != json.loads(json.dumps(expected)):
                raise ManifestMismatchError(
                    f"embedding cache {self.dir} was written with {found}, not {expected}; "
                    "point the artifacts dir elsewhere or delete that folder"
                )
        else:
            tmp = self.dir / f".manifest-{uuid.uuid4().hex}.json"
            tmp.write_text(json.dumps(expected, indent=2, sort_keys=True), encoding="utf-8")
            tmp.replace(path)
        self.manifest = expected

    # -- index -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Pick up shards written since the last look (by this or another process)."""
        with self._lock:
            for shard in sorted(self.dir.glob("shard-*.safetensors")):
                if shard in self._known:
                    continue
                tensors = _read_header(shard)
                emb, keys = tensors.get("embeddings"), tensors.get("keys")
                if (emb is None or keys is None or len(emb.shape) != 2 or emb.shape[1] != self.dim
                        or keys.shape != (emb.shape[0], KEY_BYTES) or emb.dtype != self.dtype):
                    raise ManifestMismatchError(
                        f"embedding shard {shard} does not hold (N, {self.dim}) {self.dtype} vectors with their "
                        "keys; delete the shard"
                    )
                fd = os.open(shard, os.O_RDONLY)
                try:
                    key_rows = keys.read_rows(fd, 0, keys.shape[0]) if keys.shape[0] else np.empty((0, KEY_BYTES))
                finally:
                    os.close(fd)
                shard_no = len(self._shards)
                self._shards.append(shard)
                self._known.add(shard)
                self._tensors.append(emb)
                self._index.add(np.ascontiguousarray(key_rows, dtype=np.uint8).view(f"S{KEY_BYTES}").reshape(-1),
                                shard_no)

    def __len__(self) -> int:
        return len(self._index)

    def contains(self, keys: Sequence[str]) -> np.ndarray:
        """(N,) bool: which keys are cached."""
        self.refresh()
        wanted = _as_keys(keys)
        with self._lock:  # a merge replaces the index's arrays: never read it halfway through one
            return self._index.lookup(wanted) >= 0

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """(N, D) float32 embeddings of cached keys, in order. Raises ValidationError on a miss."""
        self.refresh()
        out = np.empty((len(keys), self.dim), dtype=np.float32)
        if not len(keys):
            return out
        wanted = _as_keys(keys)
        with self._lock:
            loc = self._index.lookup(wanted)
        missing = np.flatnonzero(loc < 0)
        if missing.size:
            raise ValidationError(f"embedding of {keys[int(missing[0])]!r} is not cached; call ensure() first")
        shard_of, row_of = loc >> 32, loc & 0xFFFFFFFF
        for shard_no in np.unique(shard_of).tolist():
            sel = np.flatnonzero(shard_of == shard_no)
            rows = row_of[sel]
            lo, hi = int(rows.min()), int(rows.max()) + 1
            tensor = self._tensors[shard_no]
            fd = os.open(self._shards[shard_no], os.O_RDONLY)
            try:
                if hi - lo <= 4 * rows.size:  # dense: one read of the span
                    out[sel] = tensor.read_rows(fd, lo, hi)[rows - lo]
                else:  # a few rows of a large shard: one small read each
                    for i, row in zip(sel.tolist(), rows.tolist(), strict=True):
                        out[i] = tensor.read_rows(fd, row, row + 1)[0]
            finally:
                os.close(fd)
        return out

    # -- writing -----------------------------------------------------------------------------------
    def put(self, keys: Sequence[str], embeddings: np.ndarray) -> Path | None:
        """Write one new shard with these vectors. embeddings: (N, D) float. Returns the shard path."""
        if len(keys) != embeddings.shape[0] or (len(keys) and embeddings.shape[1] != self.dim):
            raise ValidationError(f"put() got {len(keys)} keys and vectors of shape {embeddings.shape}")
        if not len(keys):
            return None
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.safetensors"
        tmp = self.dir / f".{name}.tmp"
        save_file(
            {"embeddings": np.ascontiguousarray(embeddings, dtype=self.dtype),
             "keys": _as_keys(keys).view(np.uint8).reshape(len(keys), KEY_BYTES)},
            str(tmp),
            metadata={"cache_key": str(self.manifest["cache_key"]), "rows": str(len(keys))},
        )
        final = self.dir / name
        tmp.replace(final)
        self.refresh()
        return final

    def ensure(
        self,
        keys: Sequence[str],
        texts: Sequence[str] | Callable[[Sequence[int]], Sequence[str]],
        embed_fn: Callable[[Sequence[str]], np.ndarray],
        *,
        chunk_size: int = 4096,
    ) -> tuple[np.ndarray, StoreStats]:
        """Embeddings for ``keys``, computing and caching the missing ones.

        ``texts`` is either the texts aligned with ``keys`` or a function from the positions of the
        missing keys to their texts (so a caller can avoid loading texts that are cached).
        Each ``chunk_size`` newly embedded vectors become one shard. Returns ((N, D) float32, stats).
        """
        unique_missing: dict[str, int] = {}
        hit = self.contains(keys)
        for pos in np.flatnonzero(~hit).tolist():
            unique_missing.setdefault(keys[pos], pos)
        positions = list(unique_missing.values())
        if positions:
            for start in range(0, len(positions), chunk_size):
                chunk = positions[start : start + chunk_size]
                chunk_texts = [texts[i] for i in chunk] if not callable(texts) else list(texts(chunk))
                vectors = embed_fn(chunk_texts)
                self.put([keys[i] for i in chunk], vectors)
                log.info("embedded %d/%d new texts", min(start + chunk_size, len(positions)), len(positions))
        stats = StoreStats(n_requested=len(keys), n_hit=int(hit.sum()), n_computed=len(positions))
        return self.get(keys), stats


def open_embedding_store(root: str | Path, ref: EncoderRef, embed: EmbedConfig, dim: int) -> EmbeddingStore:
    """The shared cache for one encoder (by digest) + embedding config; no model is loaded."""
    manifest: dict[str, object] = {
        "encoder_digest": ref.digest,
        # Pooled features, the only kind before stacked ones, are left out: stores written then still open.
        "embed_config": embed.model_dump(
            mode="json", exclude={"batch_size", *(("features",) if embed.features == "pooled" else ())}),
    }
    return EmbeddingStore(root, embedding_cache_key(ref, embed), manifest, dim)
