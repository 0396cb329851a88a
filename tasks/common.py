"""What every task needs at the edge: settings, a database session factory, the transient-error policy.

Tasks read :class:`~marketplace.settings.Settings` once per process and share one engine per database
URL (engines are thread-safe; sessions are not, so each task opens its own).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import create_db_engine, make_session_factory
from marketplace.db.migrate import upgrade
from marketplace.settings import Settings, get_settings

__all__ = ["engine_for", "is_transient_db_error", "retry_on_transient_db_error", "session_factory", "task_settings"]

log = logging.getLogger(__name__)

# SQLSTATEs worth retrying: serialization failure, deadlock, connection trouble, admin shutdown.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "08000", "08003", "08006", "08001", "57P01", "57P02", "57P03"}


def task_settings() -> Settings:
    return get_settings()


@functools.lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine per URL per process, with the schema brought up to date once."""
    engine = create_db_engine(url)
    upgrade(engine)
    return engine


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    cfg = settings or task_settings()
    cfg.ensure_home()
    return make_session_factory(engine_for(cfg.resolved_database_url))


def is_transient_db_error(exc: BaseException) -> bool:
    """True for errors a retry can cure (lock timeouts, serialization failures, dropped connections)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if sqlstate in _TRANSIENT_SQLSTATES:
            return True
        if isinstance(exc, OperationalError):
            text = str(exc.orig).lower()
            return "database is locked" in text or "database is busy" in text or "could not connect" in text
    return False


def retry_on_transient_db_error(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient database errors, never bad input."""
    try:
        state.result()
    except Exception as exc:
        transient = is_transient_db_error(exc)
        log.info("task %s failed with %s: %s", getattr(task, "name", task), type(exc).__name__,
                 "retrying" if transient else "not retrying")
        return transient
    return False
