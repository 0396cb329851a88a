"""The ``label`` flow: exact LinFiK teacher labels for a campaign's subsample (docs/valuation.md).

plan → target gradients per checkpoint ∥ train-shard gradients mapped over the task runner → score.
The task runner is the one the settings name (flows.runners: a pool of ``MKT_MAX_WORKERS`` threads,
or Dask); ``device`` None is ``MKT_DEVICE``, resolved where the tasks run. Rerunning the same request
resumes an interrupted run at its first unfinished shard.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, unmapped

from flows.runners import build_task_runner
from tasks.label import (
    compute_target_gradients_task,
    compute_train_gradients_task,
    describe_label_set_task,
    fail_label_set_task,
    plan_labels_task,
    score_labels_task,
)

__all__ = ["label"]


@flow(name="label", task_runner=build_task_runner(), log_prints=False)
def label(
    campaign: str,
    n: int,
    config: dict[str, Any] | None = None,
    shard_size: int = 512,
    batch_size: int = 8,
    device: str | None = None,
) -> dict[str, Any]:
    """Label ``n`` samples of ``campaign`` (id or name); returns the label set summary. ``config``: LinFiK
    options; None keeps the configuration of the campaign's latest label set (the defaults for its first)."""
    started = time.perf_counter()
    plan = plan_labels_task(campaign, n, config, shard_size)
    if plan["already_complete"]:
        return {**describe_label_set_task(plan["label_set_id"]), "reused": True}
    run_dir, label_set_id = plan["run_dir"], plan["label_set_id"]
    try:
        futures: list[Any] = []
        for c in range(len(plan["checkpoints"])):
            futures.append(compute_target_gradients_task.submit(run_dir, c, device, batch_size))
            futures.extend(compute_train_gradients_task.map(
                unmapped(run_dir), unmapped(c), list(range(plan["n_train_shards"])), unmapped(device),
                unmapped(batch_size),
            ))
        outcomes = [f.result() for f in futures]
        summary = score_labels_task(label_set_id, device)
    except BaseException as exc:
        fail_label_set_task(label_set_id, f"{type(exc).__name__}: {exc}")
        raise
    shard_outcomes = [o for o in outcomes if isinstance(o, dict)]
    summary["shards_computed"] = sum(1 for o in shard_outcomes if o["computed"])
    summary["shards_skipped"] = sum(1 for o in shard_outcomes if not o["computed"])
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary
