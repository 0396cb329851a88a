"""Tasks of the ``pricing`` flow: create (or find) the pricing run, then post it to the ledger.

Both are idempotent (see marketplace.pricing.service), so Prefect retries are always safe; each unit of
work inside also retries serialization failures and deadlocks itself (marketplace.ledger.retry).
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from marketplace.ledger import run_in_transaction
from marketplace.pricing import parse_policy
from marketplace.pricing.runner import post_until_done
from marketplace.pricing.service import create_pricing_run
from tasks.common import retry_on_transient_db_error, session_factory

__all__ = ["create_pricing_run_task", "post_pricing_run_task"]

log = logging.getLogger(__name__)


@task(name="create-pricing-run", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 5],
      retry_condition_fn=retry_on_transient_db_error)
def create_pricing_run_task(campaign: str, period: str, policy: dict[str, Any] | None = None,
                            score_run_id: int | None = None) -> int:
    """Allocate the period's budget from the latest complete score run; returns the pricing run id."""
    pricing_policy = parse_policy(policy)
    run, created = run_in_transaction(
        session_factory(),
        lambda s: create_pricing_run(s, campaign, period, pricing_policy, score_run_id=score_run_id),
    )
    log.info("pricing run %d %s", run.id, "created" if created else "already existed")
    return run.id


@task(name="post-pricing-run", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 5],
      retry_condition_fn=retry_on_transient_db_error)
def post_pricing_run_task(pricing_run_id: int, batch_size: int = 500) -> dict[str, Any]:
    """Post every submission's transaction of a pricing run (resumes after a crash)."""
    n_posted, superseded_by = post_until_done(session_factory(), pricing_run_id, batch_size=batch_size)
    return {"pricing_run_id": pricing_run_id, "transactions_posted": n_posted, "superseded_by": superseded_by}
