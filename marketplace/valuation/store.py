"""Sharded on-disk store of projected gradients, with a manifest that readers check.

Layout of a store folder::

    manifest.json            what produced the store (see StoreSpec) + per-shard status
    shard-00000.safetensors  grads (n, D) in the store dtype, sample_ids (n,), losses (n,),
                             and, when K-FAC statistics are kept, kfac.a.{l}, kfac.s.{l}, kfac.counts
    .lock                    advisory lock (fcntl.flock) for manifest updates

A shard is written to a temporary file and renamed into place (atomic on one file system), then the
manifest is updated under the lock (also write-temp-then-rename). A run killed at any point leaves
either a finished shard that the manifest lists, or a stray temporary file that is ignored: a rerun
resumes at the first unfinished shard. Several threads or processes (a Dask worker per core) may
write different shards of one store concurrently.

Opening a store that exists with other inputs raises :class:`ManifestMismatchError` naming the first
field that differs — a store is never silently mixed across models, projections or data.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from marketplace.errors import ManifestMismatchError, ValidationError
from marketplace.valuation.logra import KFACStats

__all__ = ["FORMAT_VERSION", "GradientStore", "ShardData", "StoreSpec"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass(frozen=True)
class StoreSpec:
    """Everything a store's contents depend on. Compared field by field on open."""

    kind: str  # "train" or "target"
    model_digest: str
    projection_digest: str  # Projection.digest(): config hash + layer shapes
    projection_config_hash: str
    data_digest: str  # over (sample id, content hash) of every planned sample, in order
    dtype: str  # stored gradient dtype
    dim: int  # D = Σ_l r_out·r_in
    max_length: int
    kfac: bool
    layer_names: tuple[str, ...]
    shard_sample_ids: tuple[tuple[int, ...], ...]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["layer_names"] = list(self.layer_names)
        d["shard_sample_ids"] = [list(s) for s in self.shard_sample_ids]
        return d


@dataclass(frozen=True)
class ShardData:
    sample_ids: torch.Tensor  # (n,) int64
    grads: torch.Tensor  # (n, D) store dtype
    losses: torch.Tensor  # (n,) float32
    kfac: KFACStats | None


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


class GradientStore:
    """One folder of gradient shards. Create or reopen with :meth:`open`."""

    def __init__(self, root: Path, spec: StoreSpec) -> None:
        self.root = root
        self.spec = spec

    # --- opening ----------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, spec: StoreSpec, *, create: bool = True) -> GradientStore:
        """Open the store at ``root`` for ``spec``: create it, or check an existing manifest matches."""
        root = Path(root)
        manifest_path = root / "manifest.json"
        store = cls(root, spec)
        if manifest_path.exists():
            store._check(json.loads(manifest_path.read_text(encoding="utf-8")))
            return store
        if not create:
            raise ValidationError(f"no gradient store at {root}; run the label flow to compute it")
        root.mkdir(parents=True, exist_ok=True)
        with store._locked():
            if not manifest_path.exists():
                _write_json_atomic(manifest_path, {"format_version": FORMAT_VERSION, "spec": spec.to_json(),
                                                   "shards": {}})
        store._check(store._read_manifest())
        return store

    def _check(self, manifest: dict[str, Any]) -> None:
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ManifestMismatchError(
                f"gradient store {self.root}: field 'format_version' is {manifest.get('format_version')!r}, "
                f"this code reads {FORMAT_VERSION}; delete the folder to recompute it"
            )
        found = manifest.get("spec", {})
        expected = self.spec.to_json()
        for key, want in expected.items():
            have = found.get(key)
            if have != want:
                raise ManifestMismatchError(
                    f"gradient store {self.root}: manifest field '{key}' is {_short(have)} but this run expects "
                    f"{_short(want)}. The store was written for another model, projection, config or data; "
                    "use a fresh folder (or delete this one) to recompute"
                )

    # --- manifest -------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read_manifest(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.root / "manifest.json").read_text(encoding="utf-8"))
        return result

    @property
    def n_shards(self) -> int:
        return len(self.spec.shard_sample_ids)

    def _shard_path(self, index: int) -> Path:
        return self.root / f"shard-{index:05d}.safetensors"

    def is_complete(self, index: int) -> bool:
        entry = self._read_manifest()["shards"].get(str(index))
        return bool(entry and entry.get("status") == "complete" and self._shard_path(index).exists())

    def unfinished_shards(self) -> list[int]:
        shards = self._read_manifest()["shards"]
        return [
            i for i in range(self.n_shards)
            if not (shards.get(str(i), {}).get("status") == "complete" and self._shard_path(i).exists())
        ]

    def require_complete(self) -> None:
        missing = self.unfinished_shards()
        if missing:
            raise ValidationError(
                f"gradient store {self.root} has {len(missing)} unfinished shard(s) ({missing[:8]}); "
                "rerun the label flow with the same arguments to resume"
            )

    # --- shards ---------------------------------------------------------------------------------------

    def write_shard(self, index: int, grads: torch.Tensor, losses: torch.Tensor, kfac: KFACStats | None) -> None:
        """Write shard ``index`` (rows in the planned sample order) atomically, then mark it complete."""
        ids = self.spec.shard_sample_ids[index]
        if grads.shape != (len(ids), self.spec.dim):
            raise ValueError(f"shard {index}: grads {tuple(grads.shape)} but expected {(len(ids), self.spec.dim)}")
        if (kfac is not None) != self.spec.kfac:
            raise ValueError(f"shard {index}: K-FAC statistics {'given' if kfac else 'missing'} for spec.kfac="
                             f"{self.spec.kfac}")
        tensors = {
            "grads": grads.to(_DTYPES[self.spec.dtype]).contiguous(),
            "sample_ids": torch.tensor(ids, dtype=torch.int64),
            "losses": losses.to(torch.float32).contiguous(),
        }
        if kfac is not None:
            for li, name in enumerate(self.spec.layer_names):
                tensors[f"kfac.a.{li}"] = kfac.a_sum[name].to(torch.float64).contiguous()
                tensors[f"kfac.s.{li}"] = kfac.s_sum[name].to(torch.float64).contiguous()
            tensors["kfac.counts"] = torch.tensor([kfac.n_tokens, kfac.n_samples], dtype=torch.int64)
        final = self._shard_path(index)
        tmp = final.with_name(f"{final.name}.{os.getpid()}.{id(tensors)}.tmp")
        save_file(tensors, str(tmp), metadata={"format_version": str(FORMAT_VERSION)})
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        tmp.replace(final)
        with self._locked():
            manifest = self._read_manifest()
            manifest["shards"][str(index)] = {"status": "complete", "file": final.name, "rows": len(ids),
                                              "sha256": digest}
            _write_json_atomic(self.root / "manifest.json", manifest)
        log.debug("store %s: shard %d written (%d rows)", self.root, index, len(ids))

    def read_shard(self, index: int, *, with_grads: bool = True) -> ShardData:
        if not self.is_complete(index):
            raise ValidationError(f"gradient store {self.root}: shard {index} is not complete; resume the run")
        kfac = None
        with safe_open(str(self._shard_path(index)), framework="pt") as fh:
            ids = fh.get_tensor("sample_ids")
            if ids.tolist() != list(self.spec.shard_sample_ids[index]):
                raise ManifestMismatchError(
                    f"gradient store {self.root}: shard {index} holds other sample ids than its manifest lists; "
                    "the folder was tampered with or mixed; delete it to recompute"
                )
            grads = fh.get_tensor("grads") if with_grads else torch.empty(0)
            losses = fh.get_tensor("losses")
            if self.spec.kfac:
                counts = fh.get_tensor("kfac.counts").tolist()
                kfac = KFACStats(
                    a_sum={n: fh.get_tensor(f"kfac.a.{i}") for i, n in enumerate(self.spec.layer_names)},
                    s_sum={n: fh.get_tensor(f"kfac.s.{i}") for i, n in enumerate(self.spec.layer_names)},
                    n_tokens=int(counts[0]),
                    n_samples=int(counts[1]),
                )
        return ShardData(sample_ids=ids, grads=grads, losses=losses, kfac=kfac)

    def read_columns(self, index: int, columns: slice) -> torch.Tensor:
        """grads[:, columns] of one shard without reading the other columns' rows into memory."""
        with safe_open(str(self._shard_path(index)), framework="pt") as fh:
            return fh.get_slice("grads")[:, columns.start : columns.stop]

    # --- aggregates -----------------------------------------------------------------------------------

    def mean_gradient(self) -> torch.Tensor:
        """(D,) float64 mean of every stored row."""
        self.require_complete()
        total = torch.zeros(self.spec.dim, dtype=torch.float64)
        count = 0
        for i in range(self.n_shards):
            g = self.read_shard(i).grads
            total += g.to(torch.float64).sum(dim=0)
            count += g.shape[0]
        if count == 0:
            raise ValidationError(f"gradient store {self.root} is empty")
        return total / count

    def gram(self, columns: slice) -> tuple[torch.Tensor, int]:
        """Σ_i g_i[columns] g_i[columns]ᵀ over every row, float64, and the row count."""
        self.require_complete()
        width = columns.stop - columns.start
        total = torch.zeros(width, width, dtype=torch.float64)
        count = 0
        for i in range(self.n_shards):
            block = self.read_columns(i, columns).to(torch.float64)  # (n, d_l)
            total += block.T @ block
            count += block.shape[0]
        return total, count

    def kfac_stats(self) -> KFACStats:
        self.require_complete()
        stats = KFACStats()
        for i in range(self.n_shards):
            shard = self.read_shard(i, with_grads=False)
            if shard.kfac is None:
                raise ValidationError(f"gradient store {self.root} keeps no K-FAC statistics")
            stats.add(shard.kfac)
        return stats
