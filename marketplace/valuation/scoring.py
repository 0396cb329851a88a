"""The scoring step of a labeling run: queries from the finished gradient stores, one LinFiK score per
sample, the Label rows, and the label set marked complete.

For each checkpoint c: ḡ_Y,c from the target store, q_c = η_c H_c⁻¹ ḡ_Y,c (the preconditioner from the
train store's statistics where it needs them; with ``reference="pool"`` ḡ_Y,c − ḡ_pool,c, the train
store's mean, in place of ḡ_Y,c), saved to the run folder for later exact labels
(marketplace.valuation.queries); then every train shard's gradients are scored against q_c and the
checkpoints' scores summed. With ``weighting="token"`` each checkpoint's score is multiplied by the
sample's T(x)/L (:func:`token_weights`). Sessions: the caller owns them; nothing here commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from marketplace.db import Label, RunStatus, utcnow
from marketplace.errors import ManifestMismatchError, ValidationError
from marketplace.valuation.gradients import load_or_build_projection, open_store
from marketplace.valuation.linfik import LinFiKQuery, build_query, score_against_query
from marketplace.valuation.queries import query_meta, save_query
from marketplace.valuation.runs import LabelRunPlan, read_plan
from marketplace.valuation.store import GradientStore
from marketplace.valuation.summary import LabelRunSummary, get_label_set, summary_of
from marketplace.valuation.target_model import TargetModel, load_target_model_cached
from marketplace.valuation.tokenization import token_length_factor

__all__ = ["score_label_run", "token_weights"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _CheckpointScores:
    sample_ids: list[int]  # store row order
    scores: torch.Tensor  # (N,) float32, this checkpoint's part of LinFiK
    losses: torch.Tensor  # (N,) float32, per-sample loss in nats/token
    query_norm: float
    mean_target_loss: float


def score_label_run(session: Session, label_set_id: int, *, device: str | torch.device = "cpu") -> LabelRunSummary:
    """Build each checkpoint's query from the complete stores, score every sample, persist the labels.

    Idempotent: existing labels of the label set are replaced. Never commits.
    """
    t0 = time.perf_counter()
    label_set = get_label_set(session, label_set_id)
    plan = read_plan(label_set.store_uri, label_set_id=label_set_id)
    if plan.config_hash != label_set.config_hash:
        raise ManifestMismatchError(f"label set {label_set_id}: its run folder {plan.run_dir} has config hash "
                                    f"{plan.config_hash[:12]}, the label set {label_set.config_hash[:12]}")
    parts = [_score_checkpoint(plan, c, device) for c in range(len(plan.checkpoints))]  # the model's first
    sample_ids = parts[0].sample_ids
    if any(p.sample_ids != sample_ids for p in parts):  # pragma: no cover - stores share one plan
        raise ManifestMismatchError("checkpoint stores disagree on the sample order; delete the run folder")
    scores = torch.zeros(plan.n_samples, dtype=torch.float32)
    for part in parts:
        scores += part.scores
    if not np.all(np.isfinite(scores.numpy())):
        raise ValidationError(f"label set {label_set_id}: non-finite LinFiK scores; check the target model "
                              "(NaN weights?) or lower --eta")
    session.execute(delete(Label).where(Label.label_set_id == label_set_id))
    if sample_ids:
        session.execute(insert(Label), [
            {"label_set_id": label_set_id, "sample_id": sid, "score": float(sc)}
            for sid, sc in zip(sample_ids, scores.tolist(), strict=True)
        ])
    stats = _stats(scores.numpy(), parts[0].losses.numpy())
    stats["query_norms"] = [p.query_norm for p in parts]
    stats["mean_target_loss"] = [p.mean_target_loss for p in parts]
    stats["score_seconds"] = round(time.perf_counter() - t0, 3)
    label_set.n_labeled = len(sample_ids)
    label_set.status = RunStatus.COMPLETE
    label_set.finished_at = utcnow()
    label_set.stats = stats
    session.flush()
    log.info("label set %d: %d labels, mean %.3g, %.0f%% positive", label_set_id, len(sample_ids),
             stats.get("mean", 0.0), 100 * stats.get("fraction_positive", 0.0))
    return summary_of(label_set)


def _score_checkpoint(plan: LabelRunPlan, c: int, device: str | torch.device) -> _CheckpointScores:
    """Checkpoint ``c``'s query (saved to the run folder) and its part of every sample's score."""
    config = plan.linfik_config
    ckpt = plan.checkpoints[c]
    target = load_target_model_cached(ckpt.path, device=device)
    projection = load_or_build_projection(plan, c, target)
    train = open_store(plan, c, "train", projection)
    train.require_complete()
    target_store = open_store(plan, c, "target", projection)
    query = _build_query(plan, c, train, target_store, projection)
    save_query(Path(plan.run_dir) / f"query-c{c}.safetensors", query,
               query_meta(plan.config_hash, plan.target_data_digest, ckpt, query))
    weights = _planned_token_weights(plan, target) if config.weighting == "token" else None
    scores = torch.zeros(plan.n_samples, dtype=torch.float32)
    losses = torch.zeros(plan.n_samples, dtype=torch.float32)
    sample_ids: list[int] = []
    row = 0
    for s in range(train.n_shards):
        shard = train.read_shard(s)
        n = shard.grads.shape[0]
        part = score_against_query(shard.grads, query, cosine=config.cosine)
        scores[row : row + n] = part if weights is None else part * weights[row : row + n]
        losses[row : row + n] = shard.losses
        sample_ids.extend(shard.sample_ids.tolist())
        row += n
    target_losses = torch.cat([target_store.read_shard(i).losses for i in range(target_store.n_shards)])
    return _CheckpointScores(sample_ids, scores, losses, float(query.vector.norm()), float(target_losses.mean()))


def _build_query(plan: LabelRunPlan, c: int, train: GradientStore, target_store: GradientStore,
                 projection: Any) -> LinFiKQuery:
    """q_c = η_c H_c⁻¹ ḡ_Y,c, H_c from the train store's statistics where the preconditioner needs them;
    with ``reference="pool"``, ḡ_Y,c − ḡ_pool,c in place of ḡ_Y,c (ḡ_pool,c the train store's mean)."""
    config = plan.linfik_config

    def gram(_idx: int, columns: slice) -> tuple[torch.Tensor, int]:
        return train.gram(columns)

    return build_query(
        target_store.mean_gradient(), projection, eta=plan.checkpoints[c].eta, preconditioner=config.preconditioner,
        damping_ratio=config.damping_ratio,
        gram=gram if config.preconditioner == "fisher" else None,
        kfac=train.kfac_stats() if config.preconditioner == "kfac" else None,
        reference_mean=train.mean_gradient() if config.reference == "pool" else None,
    )


def token_weights(model: TargetModel, texts: Sequence[str], prompt_chars: Sequence[int | None],
                  max_length: int) -> torch.Tensor:
    """T(x)/L per text as the labeler multiplies by it: (N,) float32 (see
    :func:`~marketplace.valuation.tokenization.token_length_factor`)."""
    factor = token_length_factor(model.tokenizer, texts, prompt_chars, max_length=max_length,
                                 context_length=model.context_length)
    return torch.from_numpy(factor).to(torch.float32)


def _planned_token_weights(plan: LabelRunPlan, model: TargetModel) -> torch.Tensor:
    """:func:`token_weights` of every planned sample, in store row order (samples.parquet is that order)."""
    table = pq.read_table(Path(plan.run_dir) / "samples.parquet", columns=["text", "prompt_chars"])
    prompts = [None if p is None else int(p) for p in table.column("prompt_chars").to_pylist()]
    return token_weights(model, table.column("text").to_pylist(), prompts, plan.linfik_config.max_length)


def _stats(scores: np.ndarray, losses: np.ndarray) -> dict[str, Any]:
    """Summary statistics of a label set's scores (LinFiK units) and the samples' losses (nats/token)."""
    if scores.size == 0:
        return {"n": 0}
    q = np.quantile(scores, [0.1, 0.5, 0.9])
    return {
        "n": int(scores.size),
        "mean": float(scores.mean()), "std": float(scores.std()),
        "min": float(scores.min()), "p10": float(q[0]), "median": float(q[1]), "p90": float(q[2]),
        "max": float(scores.max()),
        "fraction_positive": float((scores > 0).mean()),
        "mean_sample_loss": float(losses.mean()),
    }
