"""Shared fixtures.

Databases: ``db_url`` runs a test on SQLite and, when ``MKT_TEST_POSTGRES_URL`` is set (``.ci/run`` sets
it), on PostgreSQL too. Each PostgreSQL test gets a fresh schema (search_path), so tests are isolated
and triggers/functions created by migrations never leak between tests. With ``MKT_REQUIRE_POSTGRES=1``
(CI) a missing PostgreSQL is an error, not a skip.

Prefect: one session-scoped ``prefect_test_harness`` (a temporary server starts once, 7-12 s), with
``PREFECT_HOME`` in a temp folder. Request the ``prefect_harness`` fixture in flow tests.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from marketplace.runtime import apply_offline_env

# Offline and quiet before anything imports transformers, mlflow or prefect (runtime imports none of them).
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="mkt-prefect-home-"))
apply_offline_env()

import pytest  # noqa: E402
from sqlalchemy import Engine  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from marketplace.db import create_db_engine, make_session_factory  # noqa: E402
from marketplace.db.migrate import upgrade  # noqa: E402
from tests.support.databases import drop_postgres_schema, make_fresh_postgres_url, postgres_url_or_skip  # noqa: E402

ENGINES = ["sqlite", "postgresql"]


def _fresh_postgres_url() -> Iterator[str]:
    base = postgres_url_or_skip()
    url, schema = make_fresh_postgres_url(base)
    try:
        yield url
    finally:
        drop_postgres_schema(base, schema)


def _migrated(url: str) -> Iterator[Engine]:
    eng = create_db_engine(url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL (no schema yet), once per engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    yield from _fresh_postgres_url()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database (schema at head), once per engine."""
    yield from _migrated(db_url)


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def pg_db_url() -> Iterator[str]:
    """PostgreSQL only, for what only PostgreSQL has (roles, concurrent writers, TRUNCATE): an empty schema."""
    yield from _fresh_postgres_url()


@pytest.fixture
def pg_session_factory(pg_db_url: str) -> Iterator[sessionmaker[Session]]:
    """PostgreSQL only: a migrated database's session factory."""
    for eng in _migrated(pg_db_url):
        yield make_session_factory(eng)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only, for tests that exercise logic rather than the database, or SQLite's own syntax."""
    yield from _migrated(f"sqlite:///{tmp_path / 'only.db'}")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def mkt_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated MKT_HOME for CLI and flow tests (settings are read from the environment)."""
    from marketplace import runtime

    home = tmp_path / "home"
    monkeypatch.setenv("MKT_HOME", str(home))
    monkeypatch.delenv("MKT_DATABASE_URL", raising=False)
    monkeypatch.delenv("MKT_MLFLOW_TRACKING_URI", raising=False)
    runtime.reset()  # the settings are read again; engines of earlier homes are disposed
    yield home
    runtime.reset()
