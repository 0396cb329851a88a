"""Retry a unit of work on transient database conflicts (an *edge* helper: it owns the transaction).

Retried: what :func:`marketplace.db.transient.is_retryable_idempotent_write_error` calls retryable
(serialization failures, deadlocks, connection trouble, SQLite "database is locked", and unique
violations that a concurrent writer of the same idempotent row causes: on the next attempt the work
re-reads what the winner committed). The work must therefore be idempotent. Everything else
propagates at once. Attempts are bounded; the delay grows exponentially with full jitter.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db.transient import is_retryable_idempotent_write_error

__all__ = ["run_in_transaction"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_in_transaction(
    factory: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    attempts: int = 6,
    base_delay_s: float = 0.02,
    max_delay_s: float = 1.0,
    rng: random.Random | None = None,
) -> T:
    """Run ``work(session)`` inside one ``session.begin()``; retry transient conflicts up to ``attempts`` times.

    ``work`` must be idempotent (it may run again after a unique-violation race or a lost COMMIT)."""
    rng = rng or random.Random()
    for attempt in range(1, attempts + 1):
        try:
            with factory() as session, session.begin():
                return work(session)
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable_idempotent_write_error(exc):
                raise
            delay = rng.uniform(0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1)))
            log.info("transient database conflict (%s), retry %d/%d in %.3f s",
                     type(exc.orig).__name__, attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
