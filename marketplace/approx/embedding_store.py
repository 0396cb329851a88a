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


def _encode_keys(keys: Sequence[str]) -> np.ndarray:
    """(N,) strings -> (N, 64) uint8, zero-padded ASCII."""
    arr = np.zeros((len(keys), KEY_BYTES), dtype=np.uint8)
    if len(keys):
        raw = np.array([k.encode("ascii") for k in keys], dtype=f"S{KEY_BYTES}")
        arr[:] = raw.view(np.uint8).reshape(len(keys), KEY_BYTES)
    return arr


def _decode_keys(arr: np.ndarray) -> list[str]:
    return [k.decode("ascii") for k in np.ascontiguousarray(arr).view(f"S{KEY_BYTES}").reshape(-1)]


_ST_DTYPES = {"F16": np.float16, "F32": np.float32, "U8": np.uint8}


def _map_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Memory-map the tensors of a safetensors file (read-only, no copy until rows are gathered).

    The format is an 8-byte little-endian header length, a JSON header with dtype/shape/offsets per
    tensor, then the raw little-endian data.
    """
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(header_len))
    base = 8 + header_len
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _ST_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ManifestMismatchError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape)) if shape else 1
        if end - start != count * np.dtype(dtype).itemsize:
            raise ManifestMismatchError(f"{path}: tensor {name} is truncated; delete the shard")
        out[name] = np.memmap(path, dtype=dtype, mode="r", offset=base + start, shape=shape) if count else (
            np.zeros(shape, dtype=dtype)
        )
    return out


class EmbeddingStore:
    """Read and extend the cache for one encoder + embedding config (``cache_key``).

    ``manifest`` describes what produced the vectors (encoder digest, embedding config); opening an
    existing folder with a different manifest raises :class:`ManifestMismatchError`.
    """

    def __init__(self, root: str | Path, cache_key: str, manifest: dict[str, object], dim: int,
                 dtype: str = "float16") -> None:
        if dtype not in ("float16", "float32"):
            raise ValidationError(f"a store keeps float16 or float32 values, not {dtype}")
        self.dir = Path(root) / cache_key
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        self._lock = threading.Lock()
        self._index: dict[str, tuple[int, int]] = {}
        self._shards: list[Path] = []
        self._arrays: list[np.ndarray] = []
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
            known = set(self._shards)
            for shard in sorted(self.dir.glob("shard-*.safetensors")):
                if shard in known:
                    continue
                tensors = _map_safetensors(shard)
                emb, keys = tensors["embeddings"], tensors["keys"]
                if (emb.ndim != 2 or emb.shape[1] != self.dim or keys.shape != (emb.shape[0], KEY_BYTES)
                        or emb.dtype != self.dtype):
                    raise ManifestMismatchError(
                        f"embedding shard {shard} holds {emb.shape} {emb.dtype} vectors, the store expects dim "
                        f"{self.dim} {self.dtype}; delete the shard"
                    )
                shard_no = len(self._shards)
                self._shards.append(shard)
                self._arrays.append(emb)
                for row, key in enumerate(_decode_keys(keys)):
                    self._index.setdefault(key, (shard_no, row))

    def __len__(self) -> int:
        return len(self._index)

    def contains(self, keys: Sequence[str]) -> np.ndarray:
        """(N,) bool: which keys are cached."""
        self.refresh()
        return np.fromiter((k in self._index for k in keys), dtype=bool, count=len(keys))

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """(N, D) float32 embeddings of cached keys, in order. Raises ValidationError on a miss."""
        self.refresh()
        out = np.empty((len(keys), self.dim), dtype=np.float32)
        if not len(keys):
            return out
        try:
            loc = np.array([self._index[k] for k in keys], dtype=np.int64)  # (N, 2): shard, row
        except KeyError as exc:
            raise ValidationError(f"embedding of {exc.args[0]!r} is not cached; call ensure() first") from exc
        for shard_no in np.unique(loc[:, 0]):
            sel = np.flatnonzero(loc[:, 0] == shard_no)
            out[sel] = self._arrays[shard_no][loc[sel, 1]]
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
            {"embeddings": np.ascontiguousarray(embeddings, dtype=self.dtype), "keys": _encode_keys(keys)},
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
        "embed_config": embed.model_dump(mode="json", exclude={"batch_size"}),
    }
    return EmbeddingStore(root, embedding_cache_key(ref, embed), manifest, dim)
