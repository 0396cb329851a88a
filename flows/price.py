"""The ``pricing`` flow: scores → pricing run → ledger (DESIGN.md §2, §5, §6).

create the pricing run (allocations from the latest complete score run, idempotent) → post one
transaction per submission (adjustments against everything credited before for the period).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from marketplace.revaluation import current_period
from tasks.price import create_pricing_run_task, post_pricing_run_task

__all__ = ["pricing"]


@flow(name="pricing", log_prints=False)
def pricing(campaign: str, period: str | None = None, policy: dict[str, Any] | None = None,
            score_run_id: int | None = None, batch_size: int = 500) -> dict[str, Any]:
    """Price ``campaign``'s ``period`` (default: the current UTC month); returns the run id and what was posted."""
    run_id = create_pricing_run_task(campaign, period or current_period(), policy, score_run_id)
    return post_pricing_run_task(run_id, batch_size)
