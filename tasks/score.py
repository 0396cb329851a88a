"""Tasks of the ``score`` flow; each wraps one call (or one load → compute → write step) of
``marketplace.approx``.

The champion is resolved once (``resolve_champion_task``: alias → concrete version, bundle downloaded to
the artifacts dir); shard tasks then get the score-run id, an id range and the bundle *path*. A
process keeps the loaded model and the embedding-store index between shards (``_scorer``). The
audit's exact labeler is named by a string (see :mod:`marketplace.approx.audit_labelers`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from marketplace.approx.audit import conclude_audit, pick_audit_samples, raise_if_failed
from marketplace.approx.audit_labelers import LabelerContext, label_for_audit
from marketplace.approx.bundle import Approximator
from marketplace.approx.champion import resolve_champion
from marketplace.approx.embedding_store import EmbeddingStore
from marketplace.approx.scoring import (
    compute_shard,
    fail_score_run,
    load_shard,
    open_scorer,
    start_score_run,
    write_shard,
)
from marketplace.db import session_scope
from marketplace.runtime import model_registry, resolve_device
from tasks.common import retry_on_transient_db_error, session_factory, task_settings

__all__ = ["audit_scores_task", "fail_score_run_task", "plan_scores_task", "resolve_champion_task", "score_shard_task"]

log = logging.getLogger(__name__)


@task(name="resolve-champion", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def resolve_champion_task(campaign: str, version: str | None = None) -> dict[str, Any]:
    """``models:/alinfik-<campaign>@champion`` → concrete version (resolved once), bundle downloaded."""
    settings = task_settings()
    registry = model_registry(settings)
    with session_scope(session_factory(settings)) as session:
        champion = resolve_champion(session, registry, campaign, version)
    bundle = registry.download_bundle(champion.model_name, champion.version,
                                      settings.resolved_artifacts_dir / "approx" / "models")
    log.info("%s resolved to version %s", champion.resolved_from, champion.version)
    return {**dataclasses.asdict(champion), "bundle_dir": str(bundle)}


@task(name="plan-scores", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def plan_scores_task(campaign_id: int, approximator_version_id: int, resolved_from: str, shard_size: int,
                     first_owners_only: bool) -> dict[str, Any]:
    """Create the ScoreRun and cut the not-yet-scored samples into id-range shards."""
    with session_scope(session_factory()) as session:
        plan = start_score_run(session, campaign_id, approximator_version_id, resolved_from=resolved_from,
                               shard_size=shard_size, first_owners_only=first_owners_only)
    return {"score_run_id": plan.score_run_id, "n_todo": plan.n_todo, "shards": plan.shards}


_SCORER_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _cached_scorer(bundle_dir: str, store_root: str,
                   device: str) -> tuple[Approximator, EmbeddingStore | None, EmbeddingStore | None]:
    return open_scorer(bundle_dir, store_root, device)


def _scorer(bundle_dir: str, store_root: str,
            device: str) -> tuple[Approximator, EmbeddingStore | None, EmbeddingStore | None]:
    """One loaded model (+ its stores) per process, reused by every shard it runs (shard tasks on a
    thread pool ask for it concurrently: the lock makes them share one)."""
    with _SCORER_LOCK:
        return _cached_scorer(bundle_dir, store_root, device)


@task(name="score-shard", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def score_shard_task(score_run_id: int, lo_id: int, hi_id: int, bundle_dir: str, first_owners_only: bool,
                     device: str | None = None) -> dict[str, int]:
    """Load (short read) → compute (no transaction open) → write (short write) one shard."""
    settings = task_settings()
    factory = session_factory(settings)
    approx, store, counts = _scorer(bundle_dir, str(settings.resolved_artifacts_dir / "embeddings"),
                                    resolve_device(device, settings))
    with session_scope(factory) as session:
        shard = load_shard(session, score_run_id, lo_id, hi_id,
                           is_cached=store.contains if store is not None else None,
                           first_owners_only=first_owners_only,
                           counts_cached=counts.contains if counts is not None else None)
    scores = compute_shard(shard, approx, store, counts)
    with session_scope(factory) as session:
        written = write_shard(session, scores)
    return {"n_scored": written, "n_embedded": scores.n_embedded}


@task(name="audit-scores", cache_policy=NO_CACHE)
def audit_scores_task(score_run_id: int, campaign_id: int, label_set_id: int, n_audit: int, seed: int,
                      labeler: str, device: str | None = None) -> dict[str, Any]:
    """Label a random subset exactly, record the agreement; raises AuditFailedError (after committing
    the failed status) when it is below the campaign's threshold."""
    settings = task_settings()
    factory = session_factory(settings)
    with session_scope(factory) as session:
        ids = pick_audit_samples(session, score_run_id, n_audit, seed=seed)
    ctx = LabelerContext(factory, campaign_id, label_set_id, settings.resolved_artifacts_dir,
                         resolve_device(device, settings))
    exact = label_for_audit(labeler, ctx, ids, n_audit)  # minutes of work: no transaction open
    with session_scope(factory) as session:
        result = conclude_audit(session, score_run_id, exact)
    raise_if_failed(result)
    return result.as_dict()


@task(name="fail-score-run", cache_policy=NO_CACHE)
def fail_score_run_task(score_run_id: int, reason: str) -> None:
    with session_scope(session_factory()) as session:
        fail_score_run(session, score_run_id, reason)
