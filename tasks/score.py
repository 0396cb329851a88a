"""Tasks of the ``score`` flow; each wraps one call (or one load → compute → write step) of
``marketplace.approx``.

The champion is resolved once (``resolve_champion``: alias → concrete version, bundle downloaded to
the artifacts dir); shard tasks then get the score-run id, an id range and the bundle *path*. A
process keeps the loaded model and the embedding-store index between shards (``_predictor``).

The audit's exact labeler is named by a string so that it can cross process boundaries:
``"linfik"`` (``marketplace.valuation.label_sample_ids`` with the label set's own LinFiK config),
``"none"`` (skip, recorded as skipped), or ``"package.module:factory"`` where ``factory(context)``
returns a callable ``sample_ids -> {sample_id: LinFiK}`` (tests use this for a fake).
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session, sessionmaker

from marketplace.approx.audit import (
    ExactLabeler,
    pick_audit_samples,
    raise_if_failed,
    record_audit,
    skip_audit,
)
from marketplace.approx.bundle import Approximator, load_bundle
from marketplace.approx.embedding_store import EmbeddingStore, open_embedding_store
from marketplace.approx.publish import CHAMPION
from marketplace.approx.registry import model_name_for
from marketplace.approx.scoring import (
    ShardInput,
    compute_shard,
    find_version,
    load_shard,
    mark_score_run,
    start_score_run,
    write_shard,
)
from marketplace.approx.token_factor import open_count_store
from marketplace.campaigns import get_campaign
from marketplace.db import LabelSet, RunStatus, ScoreRun, session_scope
from marketplace.errors import ConfigError, NotFoundError
from tasks.common import retry_on_transient_db_error, session_factory, task_settings
from tasks.train import make_registry, resolve_device

__all__ = ["LabelerContext", "audit_scores", "fail_score_run", "plan_scores", "resolve_champion", "score_shard"]

log = logging.getLogger(__name__)


@task(name="resolve-champion", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def resolve_champion(campaign: str, version: str | None = None) -> dict[str, Any]:
    """``models:/alinfik-<campaign>@champion`` → concrete version (resolved once), bundle downloaded."""
    settings = task_settings()
    registry = make_registry(settings)
    with session_scope(session_factory(settings)) as session:
        camp = get_campaign(session, campaign)
        name = model_name_for(camp.name)
        resolved_from = f"models:/{name}/{version}" if version else f"models:/{name}@{CHAMPION}"
        concrete = version or registry.version_for_alias(name, CHAMPION)
        if concrete is None:
            raise NotFoundError(
                f"{name} has no champion yet (no version passed the gate); train a better approximator "
                "(`marketplace train CAMPAIGN`) or promote one (`marketplace registry promote`)"
            )
        row = find_version(session, camp.id, name, concrete)
        info = {"campaign_id": camp.id, "model_name": name, "version": concrete, "approximator_version_id": row.id,
                "label_set_id": row.label_set_id, "resolved_from": resolved_from}
    bundle = registry.download_bundle(name, concrete, settings.resolved_artifacts_dir / "approx" / "models")
    log.info("%s resolved to version %s", resolved_from, concrete)
    return {**info, "bundle_dir": str(bundle)}


@task(name="plan-scores", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def plan_scores(campaign_id: int, approximator_version_id: int, resolved_from: str, shard_size: int,
                first_owners_only: bool) -> dict[str, Any]:
    """Create the ScoreRun and cut the not-yet-scored samples into id-range shards."""
    from marketplace.db import ApproximatorVersion

    with session_scope(session_factory()) as session:
        version = session.get(ApproximatorVersion, approximator_version_id)
        if version is None:
            raise NotFoundError(f"approximator version row {approximator_version_id} not found")
        plan = start_score_run(session, campaign_id, version, resolved_from=resolved_from, shard_size=shard_size,
                               first_owners_only=first_owners_only)
    return {"score_run_id": plan.score_run_id, "n_todo": plan.n_todo, "shards": plan.shards}


_PREDICTOR_LOCK = threading.Lock()


def _predictor(bundle_dir: str, store_root: str,
               device: str) -> tuple[Approximator, EmbeddingStore | None, EmbeddingStore | None]:
    """One loaded model (+ its embedding store and, token-weighted, its count store) per process, reused
    by every shard it runs (shard tasks on a thread pool ask for it concurrently: the lock makes them
    share one)."""
    with _PREDICTOR_LOCK:
        return _load_predictor(bundle_dir, store_root, device)


@functools.lru_cache(maxsize=4)
def _load_predictor(bundle_dir: str, store_root: str,
                    device: str) -> tuple[Approximator, EmbeddingStore | None, EmbeddingStore | None]:
    bundle = load_bundle(bundle_dir)
    approx = Approximator(bundle, device=device)
    store = counts = None
    if approx.embedding_cache_key is not None:
        store = open_embedding_store(store_root, bundle.encoder_ref, bundle.config.embed, bundle.dim)
    if bundle.token_factor is not None:
        counts = open_count_store(store_root, bundle.token_factor)
    return approx, store, counts


@task(name="score-shard", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def score_shard(score_run_id: int, lo_id: int, hi_id: int, bundle_dir: str, first_owners_only: bool,
                device: str = "cpu") -> dict[str, int]:
    """Load (short read) → compute (no transaction open) → write (short write) one shard."""
    settings = task_settings()
    factory = session_factory(settings)
    approx, store, counts = _predictor(bundle_dir, str(settings.resolved_artifacts_dir / "embeddings"),
                                       resolve_device(device))
    with session_scope(factory) as session:
        shard: ShardInput = load_shard(session, score_run_id, lo_id, hi_id,
                                       is_cached=store.contains if store is not None else None,
                                       first_owners_only=first_owners_only,
                                       counts_cached=counts.contains if counts is not None else None)
    scores = compute_shard(shard, approx, store, counts)
    with session_scope(factory) as session:
        written = write_shard(session, scores)
        run = session.get(ScoreRun, score_run_id)
        done, todo = (run.n_scored, run.n_todo) if run is not None else (written, written)
    log.info("score run %d: shard %d..%d scored %d (%d embedded); %d/%d done",
             score_run_id, lo_id, hi_id, written, scores.n_embedded, done, todo)
    return {"n_scored": written, "n_embedded": scores.n_embedded}


@dataclass(frozen=True)
class LabelerContext:
    """What an exact-labeler factory gets: where to read, which campaign and label set, where to work."""

    session_factory: sessionmaker[Session]
    campaign_id: int
    label_set_id: int
    work_dir: Path
    device: str


def _linfik_labeler(ctx: LabelerContext) -> ExactLabeler:
    """The real exact labeler: LinFiK with the config of the label set the version learned from."""
    try:
        from marketplace.valuation.config import LinFiKConfig
        from marketplace.valuation.labeling import label_sample_ids
    except ImportError as exc:
        raise ConfigError(
            "exact LinFiK labeling (marketplace.valuation) is not available; score with --audit-labeler none"
        ) from exc

    with session_scope(ctx.session_factory) as session:
        label_set = session.get(LabelSet, ctx.label_set_id)
        if label_set is None:
            raise NotFoundError(f"label set {ctx.label_set_id} not found")
        config = LinFiKConfig.model_validate(label_set.config)

    def label(sample_ids: Any) -> dict[int, float]:
        with session_scope(ctx.session_factory) as session:
            return label_sample_ids(session, ctx.campaign_id, list(sample_ids), config, work_dir=ctx.work_dir,
                                    device=ctx.device)

    return label


def build_labeler(spec: str, ctx: LabelerContext) -> ExactLabeler | None:
    if spec == "none":
        return None
    if spec == "linfik":
        return _linfik_labeler(ctx)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"audit labeler {spec!r} must be 'linfik', 'none' or 'package.module:factory'")
    try:
        factory: Callable[[LabelerContext], ExactLabeler] = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"audit labeler {spec!r} cannot be imported: {exc}") from exc
    return factory(ctx)


@task(name="audit-scores", cache_policy=NO_CACHE)
def audit_scores(score_run_id: int, campaign_id: int, label_set_id: int, n_audit: int, seed: int,
                 labeler: str, device: str = "cpu") -> dict[str, Any]:
    """Label a random subset exactly, record the agreement; raises AuditFailedError (after committing
    the failed status) when it is below the campaign's threshold."""
    settings = task_settings()
    factory = session_factory(settings)
    with session_scope(factory) as session:
        ids = pick_audit_samples(session, score_run_id, n_audit, seed=seed)
    ctx = LabelerContext(factory, campaign_id, label_set_id, settings.resolved_artifacts_dir, resolve_device(device))
    exact_labeler = build_labeler(labeler, ctx) if n_audit > 0 else None
    exact = exact_labeler(ids) if exact_labeler is not None and ids else None
    with session_scope(factory) as session:
        if exact is None:
            why = "audit size 0" if n_audit == 0 else ("no labeler" if exact_labeler is None else "nothing to audit")
            result = skip_audit(session, score_run_id, why)
        else:
            result = record_audit(session, score_run_id, exact)
    raise_if_failed(result)
    return result.as_dict()


@task(name="fail-score-run", cache_policy=NO_CACHE)
def fail_score_run(score_run_id: int, reason: str) -> None:
    with session_scope(session_factory()) as session:
        run = session.get(ScoreRun, score_run_id)
        if run is not None and run.status == RunStatus.RUNNING:
            mark_score_run(session, score_run_id, RunStatus.FAILED, error=reason)
