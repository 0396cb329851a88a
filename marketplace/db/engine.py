"""Engines and sessions. The caller owns the session: core functions never commit."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "create_db_engine",
    "insert_on_conflict_do_nothing",
    "is_postgres",
    "is_sqlite",
    "make_session_factory",
    "session_scope",
]

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN until the first write and never issues it for
    # DDL; we take over so that `with session.begin()` is one real SQLite transaction (BEGIN IMMEDIATE
    # takes the write lock up front and avoids upgrade deadlocks between concurrent writers).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_db_engine(url: str, *, echo: bool = False, **kwargs: Any) -> Engine:
    """Create an engine with the pragmas and pool settings each backend needs.

    SQLite: foreign keys on, WAL journal, 30 s busy timeout, one real transaction per ``begin()``.
    PostgreSQL: pre-ping connections (a restarted server must not break a long flow).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _disable_pysqlite_tx(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        # We ship psycopg 3; accept plain postgresql:// URLs.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, echo=echo, pool_pre_ping=True, **kwargs)


def is_sqlite(engine_or_session: Engine | Session) -> bool:
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name == "sqlite"


def is_postgres(engine_or_session: Engine | Session) -> bool:
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name == "postgresql"


def insert_on_conflict_do_nothing(session: Session, table: Any, index_elements: list[str]) -> Any:
    """``INSERT INTO table ... ON CONFLICT (index_elements) DO NOTHING`` for the session's engine.

    Get-or-create under concurrency: the loser of a race inserts nothing and re-reads the winner's row.
    """
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    return dialect_insert(table).on_conflict_do_nothing(index_elements=index_elements)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error. Only edges use this."""
    with factory() as session, session.begin():
        yield session
