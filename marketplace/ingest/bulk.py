"""Bulk database primitives for ingestion's hot path (ids, inserts, ``IN`` lookups), per dialect.

The ORM (an object per row) costs ~50 µs a sample; these cost 1-5 µs. PostgreSQL gets ``COPY`` (binary,
assembled by numpy for fixed-width rows), ``= ANY(array)`` and single-row binary results; SQLite gets
``executemany`` and ``IN (SELECT value FROM json_each(?))``; both keep a statement at one parameter
however long the list is (no statement recompiled per batch). Any other dialect falls back to plain
SQLAlchemy Core. Everything runs on the caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psycopg.adapt import Dumper
from psycopg.pq import Format
from sqlalchemy import Table, any_, insert, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "allocate_ids",
    "bulk_insert",
    "bulk_session",
    "copy_fixed_width",
    "fetch_row_binary",
    "in_list",
    "in_list_param",
]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _raw_connection(session: Session) -> Any:
    """The DBAPI connection (psycopg 3 on PostgreSQL) under the session's current transaction."""
    raw = session.connection().connection.dbapi_connection
    if raw is None:  # pragma: no cover - a session inside a transaction always holds a connection
        raise RuntimeError("the session has no open database connection")
    return raw


@contextmanager
def bulk_session(session: Session) -> Iterator[None]:
    """Per-transaction planner/cache settings the bulk statements rely on, for the ``with`` body.

    PostgreSQL:

    - no statement is server-prepared (psycopg's ``prepare_threshold = None`` on this connection,
      set back on exit): psycopg prepares a statement after 5 executions, and a generic plan sees
      the ``= ANY(list)`` as an opaque parameter and may compare every row with every element
      (minutes for a large file). An unprepared statement is planned for its actual list every
      time. This is deliberately not ``plan_cache_mode = force_custom_plan``: that setting also
      reaches the foreign-key triggers, whose cached per-row checks would then be planned again for
      every row inserted (+30 µs a row, +85% on the server's ``COPY`` of samples).
    - ``SET LOCAL enable_seqscan = off`` (this transaction only, set back on exit): inside one
      ingest transaction the tables grow by millions of rows no ANALYZE has seen, so the planner
      guesses that a 100k-key list matches every row and scans the whole table for each batch
      (1.9 s per batch against 4M band rows, quadratic over a file), where a bitmap index scan
      takes 0.4 s. Every statement run here is an index lookup or a COPY.

    SQLite: a page cache of up to 512 MiB on this connection (the default is 2 MiB). One large
    transaction writes millions of band rows at random keys; with the small cache the dirty pages
    spill and the inserts run ~30% slower, and the lookups of the next file re-read the index from
    the operating system. Memory is only taken as pages are used: ingesting 10^6 records into a
    fresh store peaks near 1 GB, a 10^5 store stays under 0.5 GB (benchmarks/results/scale.md).
    """
    dialect = _dialect(session)
    if dialect == "postgresql":
        raw = _raw_connection(session)
        threshold = raw.prepare_threshold
        raw.prepare_threshold = None
        try:
            session.execute(text("SET LOCAL enable_seqscan = off"))
            yield
            session.execute(text("SET LOCAL enable_seqscan TO DEFAULT"))
        finally:
            raw.prepare_threshold = threshold
        return
    if dialect == "sqlite":
        session.execute(text("PRAGMA cache_size = -524288"))
    yield


def allocate_ids(session: Session, table: Table, n: int) -> list[int]:
    """``n`` fresh primary keys for ``table`` (integer ``id`` column), increasing, so rows can be
    inserted with their ids known up front (no ``RETURNING`` round trip per row).

    PostgreSQL draws them from the column's sequence (safe under concurrency), in one array; the
    sequence is looked up once per statement, not once per id. SQLite takes ``max(id) + 1 ...``:
    safe because our engines open every transaction with ``BEGIN IMMEDIATE``
    (marketplace.db.engine), so no other writer can interleave; elsewhere a clash would fail the
    transaction on the primary key, never corrupt it.
    """
    if n <= 0:
        return []
    if _dialect(session) == "postgresql":
        ids = session.execute(
            text("WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence(:table, 'id') AS regclass) AS seq) "
                 "SELECT array_agg(nextval(s.seq) ORDER BY g) FROM s, generate_series(1, :n) AS g"),
            {"table": table.name, "n": n},
        ).scalar_one()
        return [int(i) for i in ids]
    start = session.execute(select(text("coalesce(max(id), 0)")).select_from(table)).scalar_one()
    return list(range(int(start) + 1, int(start) + 1 + n))


_INT8_OID, _INT8_ARRAY_OID = 20, 1016  # pg_type oids of bigint and bigint[]
_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_PG_COPY_TRAILER = b"\xff\xff"


def copy_fixed_width(session: Session, table: Table, columns: Sequence[str], arrays: Sequence[NDArray[Any]]) -> None:
    """PostgreSQL only: ``COPY ... (FORMAT BINARY)`` of fixed-width columns, assembled by numpy.

    ``arrays`` (one per column, the same length ``k``): ``(k,)`` int64 for a ``BIGINT`` column,
    ``(k, w)`` uint8 for a ``BYTEA`` column (each row's ``w`` bytes). A binary COPY row is a 16-bit
    field count, then per field a 32-bit length and the value, big-endian: one numpy record per row,
    so millions of rows cost one ``tobytes`` instead of a Python call each.
    """
    k = arrays[0].shape[0]
    if k == 0:
        return
    fields: list[tuple[str, Any] | tuple[str, Any, tuple[int, ...]]] = [("n", ">i2")]
    for i, arr in enumerate(arrays):
        if arr.shape[0] != k:
            raise ValueError(f"column {columns[i]!r} has {arr.shape[0]} values, {columns[0]!r} has {k}")
        if arr.ndim == 1 and arr.dtype == np.int64:
            fields += [(f"len{i}", ">i4"), (f"val{i}", ">i8")]
        elif arr.ndim == 2 and arr.dtype == np.uint8:
            fields += [(f"len{i}", ">i4"), (f"val{i}", "u1", (arr.shape[1],))]
        else:
            raise TypeError(f"column {columns[i]!r}: int64 (k,) or uint8 (k, w) arrays only, "
                            f"not {arr.dtype} {arr.shape}")
    rec = np.empty(k, dtype=np.dtype(fields))
    rec["n"] = len(arrays)
    for i, arr in enumerate(arrays):
        rec[f"len{i}"] = 8 if arr.ndim == 1 else arr.shape[1]
        rec[f"val{i}"] = arr
    raw = _raw_connection(session)
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(_PG_COPY_HEADER)
        copy.write(rec.tobytes())
        copy.write(_PG_COPY_TRAILER)


class _Int8ArrayDumper(Dumper):
    """A 1-D int64 numpy array as a binary ``BIGINT[]`` parameter: built by numpy in one pass, where
    a text literal costs a ``str`` per element here and a parse per element on the server."""

    format = Format.BINARY
    oid = _INT8_ARRAY_OID

    def dump(self, obj: Any) -> bytes:
        values = np.asarray(obj, dtype=np.int64)
        if values.size == 0:
            return struct.pack(">iii", 0, 0, _INT8_OID)  # no dimensions
        # ndim, has-nulls flag, element type, then (length, lower bound); each element is (4-byte length, value).
        head = struct.pack(">iiiii", 1, 0, _INT8_OID, values.shape[0], 1)
        rec = np.empty(values.shape[0], dtype=np.dtype([("len", ">i4"), ("val", ">i8")]))
        rec["len"] = 8
        rec["val"] = values
        return head + rec.tobytes()


def fetch_row_binary(session: Session, sql: str, params: dict[str, Any]) -> tuple[Any, ...]:
    """PostgreSQL only: the single row of ``sql`` (psycopg ``%(name)s`` placeholders), fetched in
    binary format on the session's connection, inside its transaction. For statements that return
    large ``bytea`` aggregates (binary skips the hex text encoding both ways). A parameter that is a
    1-D int64 numpy array is sent as a binary ``BIGINT[]``."""
    raw = _raw_connection(session)
    with raw.cursor(binary=True) as cur:
        cur.adapters.register_dumper(np.ndarray, _Int8ArrayDumper)  # this cursor only
        row = cur.execute(sql, params).fetchone()
    if row is None:  # pragma: no cover - callers select aggregates, which always give one row
        raise ValueError("the statement returned no row")
    return tuple(row)


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
        raw = _raw_connection(session)
        cols = ", ".join(columns)
        fmt = " (FORMAT BINARY)" if pg_types is not None else ""
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({cols}) FROM STDIN{fmt}") as copy:
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
        # every element in Python, ~2 µs each), cast once in a sub-select: the planner then sees a
        # parameter, not a constant of 100,000 elements whose selectivity it would estimate one by
        # one (50-80 ms a statement); the executor still sorts the list and probes the index per key.
        kind = "BIGINT" if integer else "TEXT"
        return column == any_(text(f"((SELECT CAST(:values AS {kind}[]))::{kind}[])"))
    return column.in_(select(text("value")).select_from(text("json_each(:values)")))


def in_list_param(session: Session, values: list[Any]) -> dict[str, Any]:
    """The parameter dict for :func:`in_list`."""
    if _dialect(session) == "postgresql":
        # Callers pass ints or hex digests: no element needs quoting in an array literal.
        return {"values": "{" + ",".join(map(str, values)) + "}"}
    return {"values": json.dumps(values)}
