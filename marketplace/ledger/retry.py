"""Retry a unit of work on transient database conflicts (an *edge* helper: it owns the transaction).

Retried: PostgreSQL serialization failures (SQLSTATE 40001) and deadlocks (40P01), SQLite "database
is locked", and unique violations (23505 / SQLite UNIQUE) that a concurrent writer of the same
idempotent row causes: on the next attempt the work re-reads what the winner committed. Everything
else propagates at once. Attempts are bounded; the delay grows exponentially with full jitter.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["is_retryable", "run_in_transaction"]

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE_SQLSTATES = {"40001", "40P01", "23505"}


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    message = str(orig).lower()
    if isinstance(exc, OperationalError) and ("database is locked" in message or "database is busy" in message):
        return True
    return isinstance(exc, IntegrityError) and "unique constraint failed" in message


def run_in_transaction(
    factory: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    attempts: int = 6,
    base_delay_s: float = 0.02,
    max_delay_s: float = 1.0,
    rng: random.Random | None = None,
) -> T:
    """Run ``work(session)`` inside one ``session.begin()``; retry transient conflicts up to ``attempts`` times."""
    rng = rng or random.Random()
    for attempt in range(1, attempts + 1):
        try:
            with factory() as session, session.begin():
                return work(session)
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            delay = rng.uniform(0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1)))
            log.info("transient database conflict (%s), retry %d/%d in %.3f s",
                     type(exc.orig).__name__, attempt, attempts - 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
