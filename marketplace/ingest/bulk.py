"""Bulk database primitives for ingestion's hot path (ids, inserts, ``IN`` lookups), per dialect.

The ORM (an object per row) costs ~50 µs a sample; these cost 1-5 µs. PostgreSQL gets ``COPY`` and
``= ANY(array)``; SQLite gets ``executemany`` and ``IN (SELECT value FROM json_each(?))``; both keep a
statement at one parameter however long the list is (no statement recompiled per batch). Any other
dialect falls back to plain SQLAlchemy Core. Everything runs on the caller's connection, inside the
caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table, any_, insert, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "allocate_ids",
    "bulk_insert",
    "bulk_insert_int_pairs",
    "bulk_session",
    "in_list",
    "in_list_param",
]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


@contextmanager
def bulk_session(session: Session) -> Iterator[None]:
    """Per-transaction planner/cache settings the bulk statements rely on, for the ``with`` body.

    PostgreSQL (``SET LOCAL``: this transaction only, set back to the session's values on exit):

    - ``plan_cache_mode = force_custom_plan``: psycopg prepares a statement after 5 executions; a
      generic plan sees the ``= ANY(list)`` as an opaque parameter and may compare every row with
      every element (minutes for a large file). Custom plans see the actual list.
    - ``enable_seqscan = off``: inside one ingest transaction the tables grow by millions of rows no
      ANALYZE has seen, so the planner guesses that a 100k-key list matches every row and scans the
      whole table for each batch (1.9 s per batch against 4M band rows, quadratic over a file),
      where a bitmap index scan takes 0.4 s. Every statement run here is an index lookup or a COPY.

    SQLite: a page cache of up to 128 MiB on this connection (the default is 2 MiB). One large
    transaction writes millions of band rows at random keys; with the small cache the dirty pages
    spill and the inserts run ~30% slower. Memory is only taken as pages are used.
    """
    dialect = _dialect(session)
    if dialect == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_seqscan = off"))
        yield
        session.execute(text("SET LOCAL plan_cache_mode TO DEFAULT; SET LOCAL enable_seqscan TO DEFAULT"))
        return
    if dialect == "sqlite":
        session.execute(text("PRAGMA cache_size = -131072"))
    yield


def allocate_ids(session: Session, table: Table, n: int) -> list[int]:
    """``n`` fresh primary keys for ``table`` (integer ``id`` column), so rows can be inserted with
    their ids known up front (no ``RETURNING`` round trip per row).

    PostgreSQL draws them from the column's sequence (safe under concurrency). SQLite takes
    ``max(id) + 1 ...``: safe because our engines open every transaction with ``BEGIN IMMEDIATE``
    (marketplace.db.engine), so no other writer can interleave; elsewhere a clash would fail the
    transaction on the primary key, never corrupt it.
    """
    if n <= 0:
        return []
    if _dialect(session) == "postgresql":
        rows = session.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
            {"table": table.name, "n": n},
        ).scalars().all()
        return [int(r) for r in rows]
    start = session.execute(select(text("coalesce(max(id), 0)")).select_from(table)).scalar_one()
    return list(range(int(start) + 1, int(start) + 1 + n))


def bulk_insert_int_pairs(session: Session, table: Table, columns: tuple[str, str], first: Sequence[int],
                          second: Sequence[int]) -> None:
    """Insert many rows of two integer columns (the near-duplicate band index: millions of rows)."""
    if not first:
        return
    if _dialect(session) == "postgresql":
        raw = session.connection().connection.dbapi_connection
        assert raw is not None
        blob = "\n".join(map("{}\t{}".format, first, second)) + "\n"  # COPY text format; ints need no escaping
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            copy.write(blob)
        return
    bulk_insert(session, table, columns, list(zip(first, second, strict=True)))


def bulk_insert(session: Session, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]],
                pg_types: Sequence[str] | None = None) -> None:
    """Insert ``rows`` (tuples in ``columns`` order, values already in database form).

    ``pg_types`` (PostgreSQL type names, one per column) switch ``COPY`` to the binary format, which
    skips text escaping (30% faster for ``bytea``); without them ``COPY`` uses the text format.
    """
    if not rows:
        return
    dialect = _dialect(session)
    conn = session.connection()
    if dialect == "postgresql":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cols = ", ".join(columns)
        fmt = " (FORMAT BINARY)" if pg_types is not None else ""
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({cols}) FROM STDIN{fmt}") as copy:  # type: ignore[attr-defined]
            if pg_types is not None:
                copy.set_types(list(pg_types))
            for row in rows:
                copy.write_row(row)
    elif dialect == "sqlite":
        placeholders = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({placeholders})", rows)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported engines
        session.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in rows])


def in_list(session: Session, column: Any, *, integer: bool) -> ColumnElement[bool]:
    """``column IN <list>`` taking the whole list as the single parameter ``values``."""
    if _dialect(session) == "postgresql":
        # The list travels as one array literal built with str.join (psycopg's list adapter checks
        # every element in Python, ~2 µs each). The literal must reach the server untyped and be cast
        # straight to the array type: a cast from a typed text parameter is evaluated once per row.
        array = text(f"(CAST(:values AS {'BIGINT' if integer else 'TEXT'}[]))")
        return column == any_(array)
    return column.in_(select(text("value")).select_from(text("json_each(:values)")))


def in_list_param(session: Session, values: list[Any]) -> dict[str, Any]:
    """The parameter dict for :func:`in_list`."""
    if _dialect(session) == "postgresql":
        # Callers pass ints or hex digests: no element needs quoting in an array literal.
        return {"values": "{" + ",".join(map(str, values)) + "}"}
    return {"values": json.dumps(values)}
