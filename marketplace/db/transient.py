"""Which database errors a retry can cure: the one classifier every retry policy asks.

Two questions, asked separately because they are safe to retry in different places:

* :func:`is_transient_db_error`: the transaction failed for a reason that has nothing to do with
  what it wrote, and running it again in a fresh transaction may succeed. PostgreSQL serialization
  failures (SQLSTATE 40001) and deadlocks (40P01); connection trouble (class 08, operator
  intervention 57P01/57P02/57P03, a connection SQLAlchemy invalidated, a refused or failed connect,
  which psycopg reports without a SQLSTATE); SQLite's "database is locked" (another writer holds the
  file). Any task may retry these.
* :func:`is_unique_violation`: a unique index refused a row (SQLSTATE 23505, SQLite "UNIQUE
  constraint failed"). For a writer of *idempotent* rows (the first owner of a content hash, a
  provider by name, a pricing run by its key, a ledger transaction by its idempotency key) this is
  the race of two concurrent writers of the same row: the next attempt re-reads what the winner
  committed and links to it. For other writers it is a real error, so only idempotent writers ask.

:func:`is_retryable_idempotent_write_error` is their union, the policy of the ingestion of one file
and of :func:`marketplace.db.retry.run_in_transaction`. A retried unit of work must be idempotent
in any case: a connection lost during COMMIT leaves its outcome unknown.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

__all__ = ["is_retryable_idempotent_write_error", "is_transient_db_error", "is_unique_violation"]

_SERIALIZATION_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
# Operator intervention: admin shutdown, crash shutdown, cannot connect now (the server is starting).
_SHUTDOWN_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
_CONNECTION_SQLSTATE_CLASS = "08"  # connection exception (08000, 08001, 08003, 08006, ...)
_UNIQUE_VIOLATION_SQLSTATE = "23505"

# Lower-case fragments of driver messages that carry no SQLSTATE.
_LOCKED_MESSAGES = ("database is locked", "database is busy", "database table is locked")
_CONNECT_MESSAGES = ("connection failed", "could not connect", "connection refused",
                     "server closed the connection unexpectedly")
_SQLITE_UNIQUE_MESSAGE = "unique constraint failed"


def _sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of the driver error (psycopg 3: ``sqlstate``; psycopg 2: ``pgcode``); None for SQLite."""
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return str(code) if code else None


def is_transient_db_error(exc: BaseException) -> bool:
    """True when running the same transaction again may succeed (see the module docstring)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = _sqlstate(exc)
    if sqlstate is not None:
        return (sqlstate in _SERIALIZATION_SQLSTATES or sqlstate in _SHUTDOWN_SQLSTATES
                or sqlstate.startswith(_CONNECTION_SQLSTATE_CLASS))
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower()
        return any(m in message for m in _LOCKED_MESSAGES + _CONNECT_MESSAGES)
    return False


def is_unique_violation(exc: BaseException) -> bool:
    """True when a unique index refused a row (PostgreSQL 23505, SQLite "UNIQUE constraint failed")."""
    if not isinstance(exc, IntegrityError):
        return False
    sqlstate = _sqlstate(exc)
    if sqlstate is not None:
        return sqlstate == _UNIQUE_VIOLATION_SQLSTATE
    return _SQLITE_UNIQUE_MESSAGE in str(exc.orig).lower()


def is_retryable_idempotent_write_error(exc: BaseException) -> bool:
    """The retry policy of a unit of work that writes idempotent rows: transient errors and unique races."""
    return is_transient_db_error(exc) or is_unique_violation(exc)
