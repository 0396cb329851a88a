"""The task of the ``price`` flow: one call of :func:`marketplace.pricing.runner.run_pricing`.

The same core call as ``marketplace price``: the campaign's pricing policy (its stored
``options["pricing"]``) with the flow's ``policy`` overrides on top, so the CLI, the ``price`` flow and
the ``revalue`` flow (which passes no policy) price a campaign identically. Every step is idempotent,
so a Prefect retry is always safe; each unit of work inside also retries transient conflicts itself.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from marketplace.pricing.runner import run_pricing
from marketplace.runtime import pricing_screener
from tasks.common import retry_on_transient_db_error, session_factory

__all__ = ["price_period_task"]


@task(name="price-period", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 5],
      retry_condition_fn=retry_on_transient_db_error)
def price_period_task(campaign: str, period: str, policy: dict[str, Any] | None = None,
                      score_run_id: int | None = None, batch_size: int = 500) -> dict[str, Any]:
    """Allocate ``campaign``'s budget for ``period`` and post it; returns the pricing run's summary."""
    return run_pricing(session_factory(), campaign, period, policy, score_run_id=score_run_id,
                       batch_size=batch_size, screener=pricing_screener()).as_dict()
