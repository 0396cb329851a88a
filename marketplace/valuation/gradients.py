"""Projected gradients of many texts: batching, and the shard steps of a labeling run.

:func:`compute_text_gradients` tokenises, sorts by length (longest first: the memory peak comes
first and padding stays small), runs LoGra batch by batch and returns rows in the input order.
:func:`compute_train_shard` and :func:`compute_target_shards` are the two per-shard steps of the
label flow: they read the run folder, compute, and write a gradient-store shard — skipping shards
that are already complete, which is what makes a killed run resume.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from marketplace.errors import ManifestMismatchError
from marketplace.valuation.config import LinFiKConfig
from marketplace.valuation.logra import KFACStats, LoGraGradientComputer
from marketplace.valuation.projection import Projection, build_projection, find_watched_layers
from marketplace.valuation.runs import LabelRunPlan, read_sample_rows, read_target_rows
from marketplace.valuation.store import GradientStore, StoreSpec
from marketplace.valuation.target_model import TargetModel, load_target_model_cached
from marketplace.valuation.tokenization import encode_texts

__all__ = [
    "ShardOutcome",
    "TextGradients",
    "compute_target_shards",
    "compute_text_gradients",
    "compute_train_shard",
    "load_or_build_projection",
    "open_store",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextGradients:
    grads: torch.Tensor  # (N, D) float32, input order
    losses: torch.Tensor  # (N,) float32, nats/token
    kfac: KFACStats | None


@dataclass(frozen=True)
class ShardOutcome:
    kind: str
    checkpoint_index: int
    shard_index: int
    rows: int
    computed: bool  # False when the shard was already complete (resume)
    seconds: float


def compute_text_gradients(
    target: TargetModel,
    projection: Projection,
    texts: Sequence[str],
    prompt_chars: Sequence[int | None] | None,
    *,
    max_length: int,
    batch_size: int,
    collect_kfac: bool = False,
) -> TextGradients:
    """LoGra gradients of ``texts`` (N,) → grads (N, D) float32 in input order."""
    n = len(texts)
    computer = LoGraGradientComputer(target.model, projection, output_dtype=torch.float32, collect_kfac=collect_kfac)
    grads = torch.zeros(n, projection.dim, dtype=torch.float32)
    losses = torch.zeros(n, dtype=torch.float32)
    kfac = KFACStats() if collect_kfac else None
    if n == 0:
        return TextGradients(grads, losses, kfac)
    enc = encode_texts(target.tokenizer, texts, prompt_chars, max_length=min(max_length, target.context_length))
    order = np.argsort(-enc.lengths, kind="stable")
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        out = computer.compute(enc.batch(rows))
        index = torch.from_numpy(rows)
        grads[index] = out.grads
        losses[index] = out.losses
        if kfac is not None and out.kfac is not None:
            kfac.add(out.kfac)
    return TextGradients(grads, losses, kfac)


def load_or_build_projection(plan: LabelRunPlan, checkpoint_index: int, target: TargetModel) -> Projection:
    """The run's projection for a checkpoint: loaded from the run folder, or drawn and saved there."""
    config = plan.linfik_config
    path = Path(plan.run_dir) / f"projection-c{checkpoint_index}.safetensors"
    if path.exists():
        proj = Projection.load(path, expected_config=config.projection)
        if [lp.layer for lp in proj.layers] != find_watched_layers(target.model, config.projection.module_patterns):
            raise ManifestMismatchError(f"{path} does not fit the layers of {target.path}; delete the run folder")
        return proj
    proj = build_projection(target.model, config.projection)
    proj.save(path)
    return proj


def open_store(plan: LabelRunPlan, checkpoint_index: int, kind: str, projection: Projection) -> GradientStore:
    """The train or target gradient store of one checkpoint, created or checked against its manifest."""
    config: LinFiKConfig = plan.linfik_config
    ckpt = plan.checkpoints[checkpoint_index]
    if kind == "train":
        ids = _planned_ids(plan, "samples.parquet", "sample_id")
        data_digest, dtype, kfac = plan.sample_data_digest, config.store_dtype, config.preconditioner == "kfac"
    elif kind == "target":
        ids = _planned_ids(plan, "target.parquet", "target_id")
        data_digest, dtype, kfac = plan.target_data_digest, "float32", False
    else:
        raise ValueError(f"store kind must be train or target, not {kind!r}")
    shards = tuple(tuple(ids[i : i + plan.shard_size]) for i in range(0, len(ids), plan.shard_size))
    spec = StoreSpec(
        kind=kind, model_digest=ckpt.digest, projection_digest=projection.digest(),
        projection_config_hash=config.projection.config_hash(), data_digest=data_digest, dtype=dtype,
        dim=projection.dim, max_length=config.max_length, kfac=kfac, layer_names=tuple(projection.layer_names),
        shard_sample_ids=shards,
    )
    return GradientStore.open(Path(plan.run_dir) / f"c{checkpoint_index}" / kind, spec)


def _planned_ids(plan: LabelRunPlan, filename: str, column: str) -> list[int]:
    import pyarrow.parquet as pq

    ids: list[int] = pq.read_table(Path(plan.run_dir) / filename, columns=[column]).column(column).to_pylist()
    return ids


def compute_train_shard(
    plan: LabelRunPlan, checkpoint_index: int, shard_index: int, *, device: str | torch.device = "cpu",
    batch_size: int = 8,
) -> ShardOutcome:
    """Projected gradients of one train shard → its store shard (skipped when already complete)."""
    t0 = time.perf_counter()
    ckpt = plan.checkpoints[checkpoint_index]
    target = load_target_model_cached(ckpt.path, device=device)
    if target.digest != ckpt.digest:
        raise ManifestMismatchError(f"checkpoint {ckpt.path} changed during the run (digest {target.digest[:12]} "
                                    f"≠ planned {ckpt.digest[:12]}); restore it or start a new run")
    projection = load_or_build_projection(plan, checkpoint_index, target)
    store = open_store(plan, checkpoint_index, "train", projection)
    _, rows = plan.train_shard_ids(shard_index)
    if store.is_complete(shard_index):
        log.info("train shard %d of checkpoint %d already complete: skipped", shard_index, checkpoint_index)
        return ShardOutcome("train", checkpoint_index, shard_index, rows, False, time.perf_counter() - t0)
    table = read_sample_rows(plan, shard_index)
    if table.num_rows != rows:
        raise ManifestMismatchError(f"samples.parquet row group {shard_index} has {table.num_rows} rows, "
                                    f"the plan expects {rows}; delete the run folder to start over")
    config = plan.linfik_config
    out = compute_text_gradients(
        target, projection, table.column("text").to_pylist(), table.column("prompt_chars").to_pylist(),
        max_length=config.max_length, batch_size=batch_size, collect_kfac=config.preconditioner == "kfac",
    )
    store.write_shard(shard_index, out.grads, out.losses, out.kfac)
    seconds = time.perf_counter() - t0
    log.info("train shard %d/%d of checkpoint %d: %d samples in %.1f s (%.1f samples/s)", shard_index + 1,
             plan.n_train_shards, checkpoint_index, rows, seconds, rows / max(seconds, 1e-9))
    return ShardOutcome("train", checkpoint_index, shard_index, rows, True, seconds)


def compute_target_shards(
    plan: LabelRunPlan, checkpoint_index: int, *, device: str | torch.device = "cpu", batch_size: int = 8
) -> list[ShardOutcome]:
    """Projected gradients of the whole target set for one checkpoint (one store shard per shard_size)."""
    ckpt = plan.checkpoints[checkpoint_index]
    target = load_target_model_cached(ckpt.path, device=device)
    projection = load_or_build_projection(plan, checkpoint_index, target)
    store = open_store(plan, checkpoint_index, "target", projection)
    config = plan.linfik_config
    outcomes = []
    for shard_index in range(plan.n_target_shards):
        t0 = time.perf_counter()
        if store.is_complete(shard_index):
            outcomes.append(ShardOutcome("target", checkpoint_index, shard_index, 0, False, 0.0))
            continue
        table = read_target_rows(plan, shard_index)
        out = compute_text_gradients(
            target, projection, table.column("text").to_pylist(), table.column("prompt_chars").to_pylist(),
            max_length=config.max_length, batch_size=batch_size,
        )
        store.write_shard(shard_index, out.grads, out.losses, None)
        outcomes.append(ShardOutcome("target", checkpoint_index, shard_index, table.num_rows, True,
                                     time.perf_counter() - t0))
    return outcomes
