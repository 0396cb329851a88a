"""Migration 0009: the portal's session table on both engines (created after the principals, dropped alone)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from marketplace.db import create_db_engine
from marketplace.db.migrate import current_revision, downgrade, upgrade

_BEFORE = "0008_principals"
_REVISION = "0009_portal_sessions"


def _insert_principal_and_token(engine: Engine) -> None:
    now = dt.datetime(2026, 12, 10, 9, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO principals (id, role, name, created_at) VALUES (1, 'provider', 'acme', :t)"),
                     {"t": now})
        conn.execute(text("INSERT INTO api_tokens (id, principal_id, token_hash, created_at) "
                          "VALUES (1, 1, :h, :t)"), {"h": "a" * 64, "t": now})


def _insert_session(engine: Engine, session_hash: str, token_id: int = 1) -> None:
    now = dt.datetime(2026, 12, 10, 9, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO portal_sessions (principal_id, token_id, session_hash, created_at, expires_at)"
                          " VALUES (1, :tok, :h, :t, :e)"),
                     {"tok": token_id, "h": session_hash, "t": now, "e": now + dt.timedelta(hours=8)})


def test_sessions_table_comes_and_goes_with_its_revision(db_url: str) -> None:
    engine = create_db_engine(db_url)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:  # SQLite checks foreign keys only when asked; the engine asks
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    try:
        upgrade(engine, _BEFORE)
        _insert_principal_and_token(engine)
        upgrade(engine, _REVISION)
        assert current_revision(engine) == _REVISION
        columns = {c["name"] for c in inspect(engine).get_columns("portal_sessions")}
        assert columns == {"id", "principal_id", "token_id", "session_hash", "created_at", "expires_at"}

        _insert_session(engine, "b" * 64)
        with pytest.raises(IntegrityError):  # one row per session hash
            _insert_session(engine, "b" * 64)
        with pytest.raises(IntegrityError):  # a session needs an existing token
            _insert_session(engine, "c" * 64, token_id=99)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM portal_sessions")).scalar_one() == 1

        downgrade(engine, _BEFORE)
        assert "portal_sessions" not in inspect(engine).get_table_names()
        with engine.begin() as conn:  # the principals and their tokens stay
            assert conn.execute(text("SELECT count(*) FROM api_tokens")).scalar_one() == 1
        upgrade(engine, _REVISION)
        assert "portal_sessions" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
