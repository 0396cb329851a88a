"""Edge driver for a whole pricing run: one unit of work to allocate, then one per batch of postings.

Used by the CLI and the Prefect tasks; it owns the transactions (through
:func:`~marketplace.ledger.retry.run_in_transaction`), the core functions it calls never commit. Every step
is idempotent, so a crash anywhere (even SIGKILL) followed by a rerun ends in the same books.

``hook(stage, n_posted)`` is a test seam: stages are ``"allocated"`` (run committed), ``"flushed"``
(a batch written, not yet committed) and ``"committed"``; ``n_posted`` counts transactions so far.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from marketplace.ledger.retry import run_in_transaction
from marketplace.pricing.policy import PricingPolicy
from marketplace.pricing.service import BatchOutcome, create_pricing_run, post_pricing_batch

__all__ = ["PricingOutcome", "post_until_done", "run_pricing"]

log = logging.getLogger(__name__)
Hook = Callable[[str, int], None]


@dataclass(frozen=True)
class PricingOutcome:
    pricing_run_id: int
    created: bool
    n_posted: int
    status: str
    superseded_by: int | None


def post_until_done(
    factory: sessionmaker[Session], pricing_run_id: int, *, batch_size: int = 500, hook: Hook | None = None
) -> tuple[int, int | None]:
    """Post a run's transactions batch by batch; returns (transactions posted, superseding run id or None)."""
    total = 0
    while True:
        outcome = run_in_transaction(factory, partial(_post_batch, pricing_run_id=pricing_run_id,
                                                      batch_size=batch_size, hook=hook, posted_before=total))
        total += outcome.n_posted
        if hook is not None and outcome.n_posted:
            hook("committed", total)
        if outcome.done:
            return total, outcome.superseded_by


def _post_batch(session: Session, *, pricing_run_id: int, batch_size: int, hook: Hook | None,
                posted_before: int) -> BatchOutcome:
    outcome = post_pricing_batch(session, pricing_run_id, batch_size)
    if hook is not None and outcome.n_posted:
        hook("flushed", posted_before + outcome.n_posted)
    return outcome


def run_pricing(
    factory: sessionmaker[Session],
    campaign: str | int,
    period: str,
    policy: PricingPolicy | None = None,
    *,
    score_run_id: int | None = None,
    batch_size: int = 500,
    hook: Hook | None = None,
) -> PricingOutcome:
    """Create (or find) the pricing run and post it to completion."""
    run, created = run_in_transaction(
        factory, lambda s: create_pricing_run(s, campaign, period, policy, score_run_id=score_run_id)
    )
    if hook is not None:
        hook("allocated", 0)
    n_posted, superseded_by = post_until_done(factory, run.id, batch_size=batch_size, hook=hook)
    status = run_in_transaction(factory, lambda s: _status(s, run.id))
    return PricingOutcome(run.id, created, n_posted, status, superseded_by)


def _status(session: Session, run_id: int) -> str:
    from marketplace.db import PricingRun

    run = session.get(PricingRun, run_id)
    return run.status.value if run is not None else "missing"
