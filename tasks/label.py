"""Tasks of the ``label`` flow; each wraps one call into ``marketplace.valuation``.

Shard tasks take a run folder and integers, never texts or tensors: the run folder (written by the
plan task) holds everything they need, so they run on any worker that sees it (a Dask worker
process included) and a retry or a rerun simply finds the finished shard and skips it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from marketplace.db import session_scope
from marketplace.runtime import resolve_device
from marketplace.valuation import describe_label_set, mark_label_set_failed, score_label_run
from marketplace.valuation.config import LinFiKConfig
from marketplace.valuation.gradients import compute_target_shards, compute_train_shard
from marketplace.valuation.runs import plan_label_run, read_plan
from tasks.common import retry_on_transient_db_error, session_factory, task_settings

__all__ = [
    "compute_target_gradients_task", "compute_train_gradients_task", "describe_label_set_task", "fail_label_set_task",
    "plan_labels_task", "score_labels_task",
]


@task(name="plan-labels", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def plan_labels_task(campaign: str, n: int, config: dict[str, Any] | None, shard_size: int) -> dict[str, Any]:
    """Subsample, snapshot to the run folder, create or reuse the LabelSet (committed). ``config`` None:
    the configuration of the campaign's latest complete label set (the defaults for its first)."""
    settings = task_settings()
    linfik = None if config is None else LinFiKConfig.model_validate(config)
    with session_scope(session_factory(settings)) as session:
        plan = plan_label_run(session, campaign, linfik, n=n, artifacts_dir=settings.resolved_artifacts_dir,
                              shard_size=shard_size)
    return plan.to_json()


@task(name="compute-target-gradients", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def compute_target_gradients_task(run_dir: str, checkpoint_index: int, device: str | None, batch_size: int) -> int:
    """Projected gradients of the campaign's target set for one checkpoint; returns rows computed."""
    outcomes = compute_target_shards(read_plan(run_dir), checkpoint_index, device=resolve_device(device),
                                     batch_size=batch_size)
    return sum(o.rows for o in outcomes if o.computed)


@task(name="compute-train-gradients", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def compute_train_gradients_task(run_dir: str, checkpoint_index: int, shard_index: int, device: str | None,
                                 batch_size: int) -> dict[str, Any]:
    """Projected gradients of one train shard into the store (a no-op when the shard is done)."""
    outcome = compute_train_shard(read_plan(run_dir), checkpoint_index, shard_index, device=resolve_device(device),
                                  batch_size=batch_size)
    return dataclasses.asdict(outcome)


@task(name="score-labels", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def score_labels_task(label_set_id: int, device: str | None) -> dict[str, Any]:
    """Preconditioner, query and scores; persists the Label rows and completes the LabelSet."""
    with session_scope(session_factory()) as session:
        return dataclasses.asdict(score_label_run(session, label_set_id, device=resolve_device(device)))


@task(name="describe-label-set", cache_policy=NO_CACHE)
def describe_label_set_task(label_set_id: int) -> dict[str, Any]:
    with session_scope(session_factory()) as session:
        return dataclasses.asdict(describe_label_set(session, label_set_id))


@task(name="fail-label-set", cache_policy=NO_CACHE)
def fail_label_set_task(label_set_id: int, reason: str) -> None:
    with session_scope(session_factory()) as session:
        mark_label_set_failed(session, label_set_id, reason)
