"""Background WAL checkpoints: commits in the body leave the copy to the database file to the thread."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from marketplace.db.checkpoints import DEFAULT_AUTOCHECKPOINT, background_checkpoints
from marketplace.db.engine import create_db_engine

_ROWS = 6000  # ~6 MB of text: more than the 1000-page (4 MiB) threshold of SQLite's automatic checkpoint


def _write(engine, tag: str) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t(body) SELECT :tag || printf('%.1000c', 'x') FROM generate"),
                     {"tag": tag})


def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_db_engine(f"sqlite:///{tmp_path / 'c.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT)"))
        conn.execute(text(f"CREATE TABLE generate AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                          f"WHERE i < {_ROWS}) SELECT i FROM n"))
    return engine


def test_commits_in_the_body_do_not_checkpoint_and_the_exit_does(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    db = tmp_path / "c.db"
    _write(engine, "a")  # outside the body: the commit itself checkpoints
    after_plain = db.stat().st_size
    assert after_plain > _ROWS * 1000
    with background_checkpoints(engine):
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0
        _write(engine, "b")
        assert db.stat().st_size == after_plain  # committed, still only in the WAL
        with engine.connect() as conn:  # and every reader sees it there
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 2 * _ROWS
    assert db.stat().st_size > after_plain + _ROWS * 1000  # the last checkpoint ran on exit
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == DEFAULT_AUTOCHECKPOINT


def test_a_nudge_checkpoints_while_the_body_goes_on(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    db = tmp_path / "c.db"
    before = db.stat().st_size
    with background_checkpoints(engine) as nudge:
        _write(engine, "a")
        nudge()
        deadline = time.monotonic() + 30
        while db.stat().st_size <= before + _ROWS * 1000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.stat().st_size > before + _ROWS * 1000


def test_other_engines_run_the_body_unchanged() -> None:
    engine = create_db_engine("sqlite://")
    with background_checkpoints(engine) as nudge:
        nudge()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
