"""Labeling: exact LinFiK for a campaign's subsample, persisted as a LabelSet with its lineage.

The steps (each one core call, so the Prefect flow can wrap them one task each):

1. :func:`~marketplace.valuation.runs.plan_label_run` — subsample, snapshot, LabelSet row;
2. :func:`~marketplace.valuation.gradients.compute_target_shards` per checkpoint — ḡ_Y's inputs;
3. :func:`~marketplace.valuation.gradients.compute_train_shard` per (checkpoint, shard);
4. :func:`score_label_run` — preconditioner, query, scores, Label rows, status ``complete``.

:func:`create_label_set` runs them in order in one process (the CLI's flow maps step 3 over a task
runner instead). :func:`label_sample_ids` scores arbitrary samples exactly against a campaign's cached
query — the ALinFiK audit step calls it.

Sessions: the caller owns them; nothing here commits.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from marketplace.db import Label, LabelSet, RunStatus, Sample, TargetSample, utcnow
from marketplace.errors import ManifestMismatchError, NotFoundError, ValidationError
from marketplace.valuation.config import LinFiKConfig, stable_hash
from marketplace.valuation.gradients import (
    ShardOutcome,
    compute_target_shards,
    compute_text_gradients,
    compute_train_shard,
    load_or_build_projection,
    open_store,
)
from marketplace.valuation.linfik import LinFiKQuery, build_query, score_against_query
from marketplace.valuation.projection import build_projection
from marketplace.valuation.runs import (
    DEFAULT_SHARD_SIZE,
    CheckpointRef,
    LabelRunPlan,
    digest_rows,
    plan_label_run,
    read_plan,
    resolve_campaign,
    resolve_checkpoints,
)
from marketplace.valuation.store import GradientStore
from marketplace.valuation.target_model import TargetModel, load_target_model_cached
from marketplace.valuation.tokenization import encode_texts

__all__ = [
    "LabelRunSummary",
    "create_label_set",
    "describe_label_set",
    "label_sample_ids",
    "load_query",
    "mark_label_set_failed",
    "score_label_run",
    "token_weights",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelRunSummary:
    label_set_id: int
    campaign_id: int
    status: str
    n_requested: int
    n_labeled: int
    config_hash: str
    target_model_digest: str
    target_data_digest: str
    projection_seed: int
    store_uri: str
    stats: dict[str, Any]
    reused: bool = False
    shards_computed: int = 0
    shards_skipped: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _summary_of(label_set: LabelSet, **kw: Any) -> LabelRunSummary:
    return LabelRunSummary(
        label_set_id=label_set.id, campaign_id=label_set.campaign_id, status=str(label_set.status),
        n_requested=label_set.n_requested, n_labeled=label_set.n_labeled, config_hash=label_set.config_hash,
        target_model_digest=label_set.target_model_digest, target_data_digest=label_set.target_data_digest,
        projection_seed=label_set.projection_seed, store_uri=label_set.store_uri, stats=dict(label_set.stats), **kw,
    )


# --- queries -------------------------------------------------------------------------------------------


def _query_meta(plan_like: dict[str, Any], ckpt: CheckpointRef, query: LinFiKQuery) -> dict[str, str]:
    return {
        "config_hash": str(plan_like["config_hash"]),
        "target_data_digest": str(plan_like["target_data_digest"]),
        "model_digest": ckpt.digest,
        "projection_digest": query.projection_digest,
        "eta": repr(query.eta),
        "preconditioner": query.preconditioner,
    }


def _save_query(path: Path, query: LinFiKQuery, meta: dict[str, str]) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    save_file({"q": query.vector.contiguous()}, str(tmp), metadata=meta)
    tmp.replace(path)


def load_query(path: Path, expected: dict[str, str]) -> LinFiKQuery:
    """A saved query, refused (ManifestMismatchError naming the field) if made from other inputs."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        for key, want in expected.items():
            if meta.get(key) != want:
                raise ManifestMismatchError(
                    f"query {path}: field '{key}' is {meta.get(key)!r}, expected {want!r}; it was built for "
                    "another config, model or target set; relabel or delete it"
                )
        vector = fh.get_tensor("q")
    return LinFiKQuery(vector=vector, eta=float(meta["eta"]), preconditioner=meta["preconditioner"],
                       projection_digest=meta["projection_digest"])


# --- scoring step --------------------------------------------------------------------------------------


def _stats(scores: np.ndarray, losses: np.ndarray) -> dict[str, Any]:
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


def score_label_run(session: Session, label_set_id: int, *, device: str | torch.device = "cpu") -> LabelRunSummary:
    """Build each checkpoint's query from the complete stores, score every sample, persist the labels.

    Idempotent: existing labels of the label set are replaced. Never commits.
    """
    t0 = time.perf_counter()
    label_set = session.get(LabelSet, label_set_id)
    if label_set is None:
        raise NotFoundError(f"label set {label_set_id} does not exist")
    plan = read_plan(label_set.store_uri, label_set_id=label_set_id)
    config = plan.linfik_config
    if plan.config_hash != label_set.config_hash:
        raise ManifestMismatchError(f"label set {label_set_id}: its run folder {plan.run_dir} has config hash "
                                    f"{plan.config_hash[:12]}, the label set {label_set.config_hash[:12]}")
    scores = torch.zeros(plan.n_samples, dtype=torch.float32)
    losses = torch.zeros(plan.n_samples, dtype=torch.float32)
    sample_ids: list[int] = []
    query_norms = []
    target_losses = []
    for c, ckpt in enumerate(plan.checkpoints):
        target = load_target_model_cached(ckpt.path, device=device)
        projection = load_or_build_projection(plan, c, target)
        train = open_store(plan, c, "train", projection)
        train.require_complete()
        target_store = open_store(plan, c, "target", projection)
        g_target = target_store.mean_gradient()  # (D,) float64
        target_losses.append(float(torch.cat([target_store.read_shard(i).losses
                                              for i in range(target_store.n_shards)]).mean()))
        def gram(_idx: int, columns: slice, store: GradientStore = train) -> tuple[torch.Tensor, int]:
            return store.gram(columns)

        query = build_query(
            g_target, projection, eta=ckpt.eta, preconditioner=config.preconditioner,
            damping_ratio=config.damping_ratio,
            gram=gram if config.preconditioner == "fisher" else None,
            kfac=train.kfac_stats() if config.preconditioner == "kfac" else None,
        )
        _save_query(Path(plan.run_dir) / f"query-c{c}.safetensors", query, _query_meta(plan.to_json(), ckpt, query))
        query_norms.append(float(query.vector.norm()))
        weights = _token_weights(plan, target) if config.weighting == "token" else None
        row = 0
        ids_c: list[int] = []
        for s in range(train.n_shards):
            shard = train.read_shard(s)
            n = shard.grads.shape[0]
            part = score_against_query(shard.grads, query, cosine=config.cosine)
            scores[row : row + n] += part if weights is None else part * weights[row : row + n]
            if c == 0:
                losses[row : row + n] = shard.losses
            ids_c.extend(shard.sample_ids.tolist())
            row += n
        if c == 0:
            sample_ids = ids_c
        elif ids_c != sample_ids:  # pragma: no cover - stores share one plan
            raise ManifestMismatchError("checkpoint stores disagree on the sample order; delete the run folder")

    if not np.all(np.isfinite(scores.numpy())):
        raise ValidationError(f"label set {label_set_id}: non-finite LinFiK scores; check the target model "
                              "(NaN weights?) or lower --eta")
    session.execute(delete(Label).where(Label.label_set_id == label_set_id))
    if sample_ids:
        session.execute(insert(Label), [
            {"label_set_id": label_set_id, "sample_id": sid, "score": float(sc)}
            for sid, sc in zip(sample_ids, scores.tolist(), strict=True)
        ])
    stats = _stats(scores.numpy(), losses.numpy())
    stats["query_norms"] = query_norms
    stats["mean_target_loss"] = target_losses
    stats["score_seconds"] = round(time.perf_counter() - t0, 3)
    label_set.n_labeled = len(sample_ids)
    label_set.status = RunStatus.COMPLETE
    label_set.finished_at = utcnow()
    label_set.stats = stats
    session.flush()
    log.info("label set %d: %d labels, mean %.3g, %.0f%% positive", label_set_id, len(sample_ids),
             stats.get("mean", 0.0), 100 * stats.get("fraction_positive", 0.0))
    return _summary_of(label_set)


def token_weights(model: TargetModel, texts: Sequence[str], prompt_chars: Sequence[int | None],
                  max_length: int) -> torch.Tensor:
    """T(x) / max_length per text (``weighting="token"``), T(x) counted as the gradients' loss counts it."""
    enc = encode_texts(model.tokenizer, texts, prompt_chars, max_length=min(max_length, model.context_length))
    return torch.from_numpy(enc.target_counts).to(torch.float32) / max_length


def _token_weights(plan: LabelRunPlan, model: TargetModel) -> torch.Tensor:
    """:func:`token_weights` of every planned sample, in store row order (samples.parquet is that order)."""
    table = pq.read_table(Path(plan.run_dir) / "samples.parquet", columns=["text", "prompt_chars"])
    prompts = [None if p is None else int(p) for p in table.column("prompt_chars").to_pylist()]
    return token_weights(model, table.column("text").to_pylist(), prompts, plan.linfik_config.max_length)


def mark_label_set_failed(session: Session, label_set_id: int, reason: str) -> None:
    """Record that a run stopped (its stores stay on disk: rerunning the same request resumes it)."""
    label_set = session.get(LabelSet, label_set_id)
    if label_set is None or label_set.status == RunStatus.COMPLETE:
        return
    label_set.status = RunStatus.FAILED
    label_set.stats = {**label_set.stats, "error": reason[:2000]}
    session.flush()


def describe_label_set(session: Session, label_set_id: int) -> LabelRunSummary:
    label_set = session.get(LabelSet, label_set_id)
    if label_set is None:
        raise NotFoundError(f"label set {label_set_id} does not exist; list them with `marketplace labels list`")
    return _summary_of(label_set, extra={"config": label_set.config, "lineage": label_set.lineage,
                                         "created_at": label_set.created_at.isoformat(),
                                         "finished_at": label_set.finished_at.isoformat()
                                         if label_set.finished_at else None})


# --- everything in one process -------------------------------------------------------------------------


def create_label_set(
    session: Session,
    campaign: int | str,
    config: LinFiKConfig,
    *,
    n: int,
    artifacts_dir: Path,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    shard_size: int = DEFAULT_SHARD_SIZE,
    on_shard_done: Callable[[ShardOutcome], None] | None = None,
) -> LabelRunSummary:
    """Label ``n`` samples of a campaign's pool in this process. Never commits (the caller does).

    A second call with the same arguments after an interruption resumes from the stores on disk;
    after success it returns the finished label set (``reused=True``). ``on_shard_done`` is called
    after every train shard (progress reporting; tests use it to simulate a crash).
    """
    t0 = time.perf_counter()
    plan = plan_label_run(session, campaign, config, n=n, artifacts_dir=artifacts_dir, shard_size=shard_size)
    if plan.already_complete:
        label_set = session.get(LabelSet, plan.label_set_id)
        assert label_set is not None  # plan_label_run just found it
        return _summary_of(label_set, reused=True)
    computed = skipped = 0
    for c in range(len(plan.checkpoints)):
        compute_target_shards(plan, c, device=device, batch_size=batch_size)
        for s in range(plan.n_train_shards):
            outcome = compute_train_shard(plan, c, s, device=device, batch_size=batch_size)
            computed += outcome.computed
            skipped += not outcome.computed
            if on_shard_done is not None:
                on_shard_done(outcome)
    summary = score_label_run(session, plan.label_set_id, device=device)
    return LabelRunSummary(**{**summary.__dict__, "shards_computed": computed, "shards_skipped": skipped,
                              "seconds": round(time.perf_counter() - t0, 3)})


# --- exact labels for given samples (the ALinFiK audit) ---------------------------------------------------


def label_sample_ids(
    session: Session,
    campaign: int | str,
    sample_ids: Sequence[int],
    config: LinFiKConfig,
    *,
    work_dir: Path,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
) -> dict[int, float]:
    """Exact LinFiK of the given samples for a campaign (same definition and projection as its labels).

    The per-checkpoint query q_c is cached under ``work_dir`` by (campaign, config hash, checkpoint
    digests, target data) on first use. When nothing is cached yet, the query of the newest finished
    label set with this config is reused; failing that, identity preconditioning computes ḡ_Y here,
    while ``fisher``/``kfac`` (which need a label set's train statistics) raise NotFoundError. The
    projection is rebuilt from the config (it is deterministic) and checked against the query's.
    Returns {sample id: score}.
    """
    camp = resolve_campaign(session, campaign)
    checkpoints = resolve_checkpoints(camp, config)
    targets = session.execute(
        select(TargetSample.id, TargetSample.text, TargetSample.prompt_chars, TargetSample.content_hash)
        .where(TargetSample.campaign_id == camp.id).order_by(TargetSample.record_index)
    ).all()
    if not targets:
        raise ValidationError(f"campaign {camp.name!r} has no target samples")
    target_digest = digest_rows([t.id for t in targets], [t.content_hash for t in targets])
    key = stable_hash({"config": config.config_hash(), "checkpoints": [c.digest for c in checkpoints],
                       "target": target_digest})[:20]
    cache = Path(work_dir) / "linfik_queries" / f"campaign-{camp.id}" / key
    cache.mkdir(parents=True, exist_ok=True)
    ids = list(dict.fromkeys(int(i) for i in sample_ids))
    rows = {r.id: r for r in session.execute(
        select(Sample.id, Sample.text, Sample.prompt_chars).where(Sample.id.in_(ids))).all()}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFoundError(f"samples {missing[:10]} do not exist")
    texts = [rows[i].text for i in ids]
    prompts = [rows[i].prompt_chars for i in ids]

    plan_like = {"config_hash": config.config_hash(), "target_data_digest": target_digest}
    total = torch.zeros(len(ids), dtype=torch.float32)
    for c, ckpt in enumerate(checkpoints):
        model = load_target_model_cached(ckpt.path, device=device)
        projection = build_projection(model.model, config.projection)
        path = cache / f"query-c{c}.safetensors"
        expected = {"config_hash": config.config_hash(), "model_digest": ckpt.digest,
                    "projection_digest": projection.digest(), "target_data_digest": target_digest}
        if not path.exists():
            query = _find_or_build_query(session, camp.id, config, c, ckpt, projection, model, targets, expected,
                                         batch_size)
            _save_query(path, query, _query_meta(plan_like, ckpt, query))
        query = load_query(path, expected)
        grads = compute_text_gradients(model, projection, texts, prompts, max_length=config.max_length,
                                       batch_size=batch_size).grads
        part = score_against_query(grads, query, cosine=config.cosine)
        if config.weighting == "token":
            part = part * token_weights(model, texts, prompts, config.max_length)
        total += part
    return dict(zip(ids, total.tolist(), strict=True))


def _find_or_build_query(
    session: Session, campaign_id: int, config: LinFiKConfig, c: int, ckpt: CheckpointRef, projection: Any,
    model: Any, targets: Sequence[Any], expected: dict[str, str], batch_size: int,
) -> LinFiKQuery:
    finished = session.execute(
        select(LabelSet).where(LabelSet.campaign_id == campaign_id, LabelSet.config_hash == config.config_hash(),
                               LabelSet.status == RunStatus.COMPLETE).order_by(LabelSet.id.desc())
    ).scalars().all()
    for label_set in finished:
        path = Path(label_set.store_uri) / f"query-c{c}.safetensors"
        if path.exists():
            try:
                return load_query(path, expected)
            except ManifestMismatchError:
                continue
    if config.needs_train_statistics():
        raise NotFoundError(
            f"no finished label set of campaign {campaign_id} with config {config.config_hash()[:12]} "
            f"({config.preconditioner} preconditioner needs its train statistics); run `marketplace label` first"
        )
    g = compute_text_gradients(model, projection, [t.text for t in targets], [t.prompt_chars for t in targets],
                               max_length=config.max_length, batch_size=batch_size).grads
    log.info("campaign %d: target gradient of %d samples computed for checkpoint %d", campaign_id, len(targets), c)
    return build_query(g.to(torch.float64).mean(dim=0), projection, eta=ckpt.eta, preconditioner="identity")

