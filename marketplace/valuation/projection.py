"""LoGra's Kronecker-structured random projection, one (P_in, P_out) pair per watched layer.

For a watched linear layer with input dimension n_in and output dimension n_out, the per-sample
weight gradient G = Σ_t δ_t x_tᵀ (n_out × n_in, the ``nn.Linear`` convention; a transformers
``Conv1D`` stores its weight transposed, so its ``weight.grad`` is Gᵀ) is projected to
G̃ = P_out G P_inᵀ (r_out × r_in) and flattened row-major. Layers are concatenated in model order,
so a sample's projected gradient is one vector of length Σ_l r_out,l · (r_in,l + b_l).

Bias (``ProjectionConfig.include_bias``, b_l = 1 when the layer has one): the layer is treated as
acting on [x; 1], so its full gradient is [G | Σ_t δ_t] (n_out × (n_in + 1)) and P_in becomes
blockdiag(P_in, 1): the last column of the projected block is P_out Σ_t δ_t.

Matrices: entries N(0, 1) / sqrt(r) drawn from a CPU ``torch.Generator`` seeded from (seed, layer
name, side, shape) — so E[PᵀP] = I (inner products are preserved in expectation), a layer's matrix
does not depend on which other layers are watched, and two checkpoints of one architecture share
the same projection. A side whose rank (capped by its dimension) equals the dimension is the
identity (stored as absent): nothing to compress, and the full-rank case is exact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file

from marketplace.errors import ConfigError, ManifestMismatchError
from marketplace.valuation.config import ProjectionConfig

__all__ = ["LayerProjection", "Projection", "WatchedLayer", "build_projection", "find_watched_layers"]

log = logging.getLogger(__name__)

LayerKind = Literal["linear", "conv1d"]


@dataclass(frozen=True)
class WatchedLayer:
    name: str
    kind: LayerKind
    n_in: int
    n_out: int
    has_bias: bool = False


@dataclass(frozen=True)
class LayerProjection:
    """Projection of one layer. ``p_in`` (r_in, n_in) / ``p_out`` (r_out, n_out); None = identity.

    ``bias``: the block has one more column, the projected bias gradient (see module doc).
    """

    layer: WatchedLayer
    rank_in: int
    rank_out: int
    p_in: torch.Tensor | None
    p_out: torch.Tensor | None
    bias: bool = False

    @property
    def cols(self) -> int:
        """Columns of the projected block: r_in, plus one for the bias."""
        return self.rank_in + int(self.bias)

    @property
    def dim(self) -> int:
        return self.cols * self.rank_out

    def dense_in(self) -> torch.Tensor:
        """P_in as a dense matrix (identity materialised; blockdiag(P_in, 1) with a bias):
        (r_in + b, n_in + b). For tests and oracles."""
        p = self.p_in if self.p_in is not None else torch.eye(self.layer.n_in)
        if not self.bias:
            return p
        out = torch.zeros(p.shape[0] + 1, p.shape[1] + 1, dtype=p.dtype)
        out[:-1, :-1] = p
        out[-1, -1] = 1.0
        return out

    def dense_out(self) -> torch.Tensor:
        return self.p_out if self.p_out is not None else torch.eye(self.layer.n_out)


def _linear_kind(module: torch.nn.Module) -> LayerKind | None:
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, torch.nn.Linear):
        return "linear"
    if isinstance(module, Conv1D):
        return "conv1d"
    return None


def find_watched_layers(model: torch.nn.Module, patterns: tuple[str, ...]) -> list[WatchedLayer]:
    """Linear / Conv1D modules whose ``named_modules`` name matches any fnmatch pattern, in model order."""
    layers: list[WatchedLayer] = []
    linear_names: list[str] = []
    for name, module in model.named_modules():
        kind = _linear_kind(module)
        if kind is None:
            continue
        linear_names.append(name)
        if not any(fnmatch(name, p) for p in patterns):
            continue
        weight = module.weight
        if kind == "linear":
            n_out, n_in = weight.shape
        else:  # Conv1D: out = x @ W + b with W (n_in, n_out)
            n_in, n_out = weight.shape
        has_bias = getattr(module, "bias", None) is not None
        layers.append(WatchedLayer(name=name, kind=kind, n_in=int(n_in), n_out=int(n_out), has_bias=has_bias))
    if not layers:
        sample = ", ".join(linear_names[:12]) or "(none)"
        raise ConfigError(
            f"no linear layer of {type(model).__name__} matches the module patterns {list(patterns)}; "
            f"its linear layers are named like: {sample}. Pass matching --module patterns."
        )
    return layers


def _layer_seed(seed: int, name: str, side: str, rows: int, cols: int) -> int:
    digest = hashlib.sha256(f"logra:{seed}:{name}:{side}:{rows}x{cols}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _gaussian(seed: int, rows: int, cols: int) -> torch.Tensor:
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    return torch.randn(rows, cols, generator=gen, dtype=torch.float32) / rows**0.5


def _side_matrix(seed: int, name: str, side: str, rank: int, dim: int) -> torch.Tensor | None:
    """(rank, dim) Gaussian / sqrt(rank), or None (identity) when the rank is not below the dimension."""
    if rank >= dim:
        return None
    return _gaussian(_layer_seed(seed, name, side, rank, dim), rank, dim)


@dataclass(frozen=True)
class Projection:
    """All watched layers' projections, in model order, plus the config that produced them."""

    config: ProjectionConfig
    layers: tuple[LayerProjection, ...]

    @property
    def dim(self) -> int:
        return sum(lp.dim for lp in self.layers)

    @property
    def layer_names(self) -> list[str]:
        return [lp.layer.name for lp in self.layers]

    def layer_slices(self) -> list[slice]:
        """Where each layer's r_out·r_in block sits in the flattened (D,) vector."""
        out, start = [], 0
        for lp in self.layers:
            out.append(slice(start, start + lp.dim))
            start += lp.dim
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-able structure (stamped in store manifests): config hash and per-layer shapes."""
        return {
            "config": self.config.model_dump(mode="json"),
            "config_hash": self.config.config_hash(),
            "dim": self.dim,
            "layers": [
                {"name": lp.layer.name, "kind": lp.layer.kind, "n_in": lp.layer.n_in, "n_out": lp.layer.n_out,
                 "has_bias": lp.layer.has_bias, "rank_in": lp.rank_in, "rank_out": lp.rank_out, "bias": lp.bias}
                for lp in self.layers
            ],
        }

    def digest(self) -> str:
        """Hash of config + layer structure: equal digests mean equal matrices."""
        blob = json.dumps(self.describe(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def save(self, path: Path) -> None:
        """safetensors file with every non-identity matrix; structure in the metadata. Atomic."""
        tensors = {}
        for lp in self.layers:
            if lp.p_in is not None:
                tensors[f"{lp.layer.name}.p_in"] = lp.p_in.contiguous()
            if lp.p_out is not None:
                tensors[f"{lp.layer.name}.p_out"] = lp.p_out.contiguous()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # concurrent writers
        save_file(tensors, str(tmp), metadata={"projection": json.dumps(self.describe(), sort_keys=True)})
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, *, expected_config: ProjectionConfig | None = None) -> Projection:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})["projection"])
        config = ProjectionConfig.model_validate(meta["config"])
        if expected_config is not None and config.config_hash() != expected_config.config_hash():
            raise ManifestMismatchError(
                f"projection file {path} was made with config hash {config.config_hash()[:12]}, expected "
                f"{expected_config.config_hash()[:12]}; use a fresh output folder or the original config"
            )
        tensors = load_file(str(path))
        layers = tuple(
            LayerProjection(
                layer=WatchedLayer(name=m["name"], kind=m["kind"], n_in=m["n_in"], n_out=m["n_out"],
                                   has_bias=m["has_bias"]),
                rank_in=m["rank_in"],
                rank_out=m["rank_out"],
                p_in=tensors.get(f"{m['name']}.p_in"),
                p_out=tensors.get(f"{m['name']}.p_out"),
                bias=m["bias"],
            )
            for m in meta["layers"]
        )
        return cls(config=config, layers=layers)


def build_projection(model: torch.nn.Module, config: ProjectionConfig) -> Projection:
    """Find the watched layers of ``model`` and draw their projection matrices (float32, CPU)."""
    layers = []
    for wl in find_watched_layers(model, config.module_patterns):
        r_in, r_out = min(config.rank_in, wl.n_in), min(config.rank_out, wl.n_out)
        p_in = _side_matrix(config.seed, wl.name, "in", r_in, wl.n_in)
        p_out = _side_matrix(config.seed, wl.name, "out", r_out, wl.n_out)
        layers.append(LayerProjection(layer=wl, rank_in=r_in, rank_out=r_out, p_in=p_in, p_out=p_out,
                                      bias=wl.has_bias and config.include_bias))
    proj = Projection(config=config, layers=tuple(layers))
    log.info("LoGra projection: %d layers, %d dims per sample (ranks ≤ %d × %d)",
             len(layers), proj.dim, config.rank_out, config.rank_in)
    return proj
