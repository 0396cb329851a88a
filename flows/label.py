"""The ``label`` flow: exact LinFiK teacher labels for a campaign's subsample (DESIGN.md §2, §4).

plan → target gradients per checkpoint ∥ train-shard gradients mapped over the task runner → score.
The thread pool runner is the default; ``task_runner="dask"`` maps shards over a Dask cluster
(a ``distributed.LocalCluster`` of worker processes, or ``dask_address``). Rerunning the same request
resumes an interrupted run at its first unfinished shard.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.label import fail_label_set, label_summary, plan_labels, score_labels, target_gradients, train_gradients

__all__ = ["label", "make_task_runner"]


def make_task_runner(kind: Literal["thread", "dask"], max_workers: int, dask_address: str | None = None) -> Any:
    """ThreadPoolTaskRunner, or a DaskTaskRunner on ``dask_address`` / a local cluster of processes."""
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=max_workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={"n_workers": max_workers, "threads_per_worker": 1, "processes": True,
                            "dashboard_address": None},
        )
    raise ValueError(f"task runner must be 'thread' or 'dask', not {kind!r}")


@flow(name="label", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=False)  # type: ignore[arg-type]
def label(
    campaign: str,
    n: int,
    config: dict[str, Any] | None = None,
    shard_size: int = 512,
    batch_size: int = 8,
    device: str = "cpu",
) -> dict[str, Any]:
    """Label ``n`` samples of ``campaign`` (id or name); returns the label set summary. ``config``: LinFiK
    options; None keeps the configuration of the campaign's latest label set (the defaults for its first)."""
    started = time.perf_counter()
    plan = plan_labels(campaign, n, config, shard_size)
    if plan["already_complete"]:
        return {**label_summary(plan["label_set_id"]), "reused": True}
    run_dir, label_set_id = plan["run_dir"], plan["label_set_id"]
    try:
        futures: list[Any] = []
        for c in range(len(plan["checkpoints"])):
            futures.append(target_gradients.submit(run_dir, c, device, batch_size))
            futures.extend(train_gradients.map(
                unmapped(run_dir), unmapped(c), list(range(plan["n_train_shards"])), unmapped(device),
                unmapped(batch_size),
            ))
        outcomes = [f.result() for f in futures]
        summary = score_labels(label_set_id, device)
    except BaseException as exc:
        fail_label_set(label_set_id, f"{type(exc).__name__}: {exc}")
        raise
    shard_outcomes = [o for o in outcomes if isinstance(o, dict)]
    summary["shards_computed"] = sum(1 for o in shard_outcomes if o["computed"])
    summary["shards_skipped"] = sum(1 for o in shard_outcomes if not o["computed"])
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary
