"""The task runner of a flow, built from the settings: the one place that turns ``MKT_TASK_RUNNER``,
``MKT_DASK_ADDRESS`` and ``MKT_MAX_WORKERS`` into a Prefect task runner.

Not a flow. ``thread`` is a thread pool of ``MKT_MAX_WORKERS`` threads; ``dask`` maps shards over the
scheduler at ``MKT_DASK_ADDRESS``, or over a local cluster of ``MKT_MAX_WORKERS`` worker processes
when no address is set. Every path that runs the ``label`` or ``score`` flow goes through here: their
decorator default, built from the settings when the module is imported (what a deployment run gets,
served by ``marketplace serve`` or by a Prefect worker: it loads the flow from its entrypoint in a
fresh process), the ``revalue`` flow's subflows (the settings when the run starts), and
``marketplace label`` / ``marketplace score`` (whose ``--task-runner`` and ``--workers`` override them).
"""

from __future__ import annotations

from typing import Any, TypeVar

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from marketplace.errors import ConfigError
from marketplace.runtime import current_settings
from marketplace.settings import Settings

__all__ = ["RUNNER_KINDS", "build_task_runner", "with_configured_runner"]

RUNNER_KINDS = ("thread", "dask")
F = TypeVar("F")


def build_task_runner(settings: Settings | None = None, *, kind: str | None = None,
                      max_workers: int | None = None) -> TaskRunner[Any]:
    """The task runner the settings name; ``kind`` / ``max_workers`` override them (CLI options)."""
    cfg = settings or current_settings()
    kind = kind or cfg.task_runner
    workers = max_workers or cfg.max_workers
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.dask_address:
            return DaskTaskRunner(address=cfg.dask_address)
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                            "dashboard_address": None},
        )
    raise ConfigError(f"task runner {kind!r} is not one of {', '.join(RUNNER_KINDS)} "
                      "(--task-runner or MKT_TASK_RUNNER)")


def with_configured_runner(flow_obj: F, settings: Settings | None = None, *, kind: str | None = None,
                           max_workers: int | None = None) -> F:
    """``flow_obj`` on the task runner :func:`build_task_runner` builds now (the settings at call time)."""
    runner = build_task_runner(settings, kind=kind, max_workers=max_workers)
    return flow_obj.with_options(task_runner=runner)  # type: ignore[attr-defined]
