"""The ``price`` flow: scores → pricing run → ledger (docs/pricing-and-ledger.md).

create the pricing run (allocations from the latest complete score run, idempotent) → post one
transaction per submission (adjustments against everything credited before for the period), in one
task that makes the same core call as ``marketplace price``. ``policy`` overrides fields of the
campaign's pricing policy (its ``options["pricing"]``); None prices with the campaign's own.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from marketplace.revaluation import current_period
from tasks.price import price_period_task

__all__ = ["price"]


@flow(name="price", log_prints=False)
def price(campaign: str, period: str | None = None, policy: dict[str, Any] | None = None,
          score_run_id: int | None = None, batch_size: int = 500) -> dict[str, Any]:
    """Price ``campaign``'s ``period`` (default: the current UTC month); returns the pricing run's summary
    (the document of ``marketplace price --json``)."""
    return price_period_task(campaign, period or current_period(), policy, score_run_id, batch_size)
