"""The one classifier of retryable database errors: transient errors, unique-violation races, their union.

Made-up driver errors pin every case; real errors raised by SQLite and PostgreSQL check that the
drivers report them the way the classifier reads them.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from marketplace.db.transient import is_retryable_idempotent_write_error, is_transient_db_error, is_unique_violation
from marketplace.errors import RejectedFileError


class _PgError(Exception):
    """A psycopg-like driver error: the SQLSTATE is an attribute."""

    def __init__(self, sqlstate: str | None, message: str = "") -> None:
        super().__init__(message or f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _invalidated() -> DBAPIError:
    exc = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    exc.connection_invalidated = True
    return exc


# (error, transient, unique violation)
CASES = [
    pytest.param(OperationalError("x", {}, _PgError("40001")), True, False, id="serialization-failure"),
    pytest.param(OperationalError("x", {}, _PgError("40P01")), True, False, id="deadlock"),
    pytest.param(DBAPIError("x", {}, _PgError("40P01")), True, False, id="deadlock-as-plain-dbapi-error"),
    pytest.param(OperationalError("x", {}, _PgError("08006")), True, False, id="connection-failure"),
    pytest.param(OperationalError("x", {}, _PgError("08001")), True, False, id="cannot-establish-connection"),
    pytest.param(OperationalError("x", {}, _PgError("57P01")), True, False, id="admin-shutdown"),
    pytest.param(OperationalError("x", {}, _PgError("57P03")), True, False, id="cannot-connect-now"),
    pytest.param(_invalidated(), True, False, id="invalidated-connection"),
    pytest.param(OperationalError("x", {}, _PgError(None, "connection failed: connection to server at "
                                                        '"127.0.0.1", port 5432 failed: Connection refused')),
                 True, False, id="psycopg3-connect-refused-without-sqlstate"),
    pytest.param(OperationalError("x", {}, Exception("database is locked")), True, False, id="sqlite-locked"),
    pytest.param(OperationalError("x", {}, Exception("database is busy")), True, False, id="sqlite-busy"),
    pytest.param(IntegrityError("x", {}, _PgError("23505")), False, True, id="pg-unique-violation"),
    pytest.param(IntegrityError("x", {}, Exception("UNIQUE constraint failed: providers.name")), False, True,
                 id="sqlite-unique-violation"),
    pytest.param(IntegrityError("x", {}, _PgError("23514")), False, False, id="check-violation"),
    pytest.param(IntegrityError("x", {}, _PgError("23503")), False, False, id="foreign-key-violation"),
    pytest.param(IntegrityError("x", {}, Exception("CHECK constraint failed: amount")), False, False,
                 id="sqlite-check-violation"),
    pytest.param(ProgrammingError("x", {}, _PgError("42P01")), False, False, id="undefined-table"),
    pytest.param(OperationalError("x", {}, Exception("no such table: samples")), False, False,
                 id="sqlite-no-such-table"),
    pytest.param(RejectedFileError("empty_file", "empty"), False, False, id="rejected-file"),
    pytest.param(ValueError("nope"), False, False, id="not-a-database-error"),
]


@pytest.mark.parametrize(("exc", "transient", "unique"), CASES)
def test_classifier(exc: BaseException, transient: bool, unique: bool) -> None:
    assert is_transient_db_error(exc) is transient
    assert is_unique_violation(exc) is unique
    assert is_retryable_idempotent_write_error(exc) is (transient or unique)


def test_real_unique_violation_on_both_engines(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t_unique (k INTEGER PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t_unique (k) VALUES (1)"))
    with pytest.raises(IntegrityError) as info, engine.begin() as conn:
        conn.execute(text("INSERT INTO t_unique (k) VALUES (1)"))
    assert is_unique_violation(info.value) and not is_transient_db_error(info.value)


def test_real_refused_connection_is_transient() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/none?connect_timeout=2")
    with pytest.raises(OperationalError) as info, engine.connect():
        pass
    assert is_transient_db_error(info.value)
    engine.dispose()
