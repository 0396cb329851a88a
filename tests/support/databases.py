"""Test databases: the machine's PostgreSQL when it answers (or ``MKT_TEST_POSTGRES_URL``), one fresh schema
per test, and the CI switch ``MKT_REQUIRE_POSTGRES=1`` that turns a missing PostgreSQL into a failure."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import text

from marketplace.db import create_db_engine

__all__ = [
    "POSTGRES_URL", "REQUIRE_POSTGRES", "drop_postgres_schema", "make_fresh_postgres_url", "postgres_url_or_skip",
]

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _probe_default_postgres() -> str | None:
    """Use the machine's PostgreSQL when it answers, so the README's test command covers both engines."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1.0):
            return DEFAULT_POSTGRES_URL
    except OSError:
        return None


POSTGRES_URL = os.environ.get("MKT_TEST_POSTGRES_URL") or _probe_default_postgres()
REQUIRE_POSTGRES = os.environ.get("MKT_REQUIRE_POSTGRES") == "1"


def postgres_url_or_skip() -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    if REQUIRE_POSTGRES:
        pytest.fail("MKT_REQUIRE_POSTGRES=1 but MKT_TEST_POSTGRES_URL is not set")
    pytest.skip("no PostgreSQL at 127.0.0.1:5432 and MKT_TEST_POSTGRES_URL unset (CI requires it)")


def make_fresh_postgres_url(base_url: str) -> tuple[str, str]:
    """A URL whose search_path is a brand-new schema; returns (url, schema)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}", schema


def drop_postgres_schema(base_url: str, schema: str) -> None:
    admin = create_db_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()
