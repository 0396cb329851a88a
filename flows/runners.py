"""Task runner chosen from the settings (``MKT_TASK_RUNNER``, ``MKT_DASK_ADDRESS``, ``MKT_MAX_WORKERS``).

Not a flow: a helper the ``revalue`` flow uses to run its ``label`` and ``score`` subflows on the
configured runner (``flow.with_options(task_runner=...)`` at call time). ``thread`` keeps each flow's
own default runner; ``dask`` maps their shards over the scheduler at ``MKT_DASK_ADDRESS`` (or a
local cluster of worker processes when unset).
"""

from __future__ import annotations

from typing import Any

from marketplace.settings import Settings, get_settings

__all__ = ["with_configured_runner"]


def with_configured_runner(flow_obj: Any, settings: Settings | None = None) -> Any:
    """``flow_obj`` on the task runner the settings name; unchanged for the default thread runner."""
    cfg = settings or get_settings()
    if cfg.task_runner == "thread":
        return flow_obj
    from flows.label import make_task_runner

    return flow_obj.with_options(task_runner=make_task_runner(cfg.task_runner, cfg.max_workers, cfg.dask_address))
