"""SQLite WAL checkpoints off the writer's path, for a writer that commits large transactions back to back.

In WAL mode a commit appends the transaction's pages to the ``-wal`` file; a checkpoint copies them
into the database file and syncs it. By default the committing connection checkpoints as soon as
the WAL passes 1000 pages, so a multi-file ingest waits, after every file, for the copy and the
sync of every page the file dirtied. The near-duplicate band index takes each file's rows at random
keys, so that is most of the index: at 10^6 records about 1 s per file by the end, a fifth of the
ingest (benchmarks/results/scale.md).

:func:`background_checkpoints` moves that work to a thread with its own connection. Connections the
engine hands out in the ``with`` body do not checkpoint at commit (``wal_autocheckpoint = 0``); the
caller calls the yielded ``nudge`` after each commit, and the thread runs a ``PASSIVE`` checkpoint
(which never blocks the writer or readers, and never waits for them) while the writer goes on with
its next file on the other core. On exit the thread runs a last checkpoint, the connections get the
default back, and nothing else changes: durability and crash safety are WAL's own (a checkpoint that
does not run leaves the pages in the WAL, where every reader finds them). For any other engine the
body runs unchanged and ``nudge`` does nothing.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

__all__ = ["DEFAULT_AUTOCHECKPOINT", "background_checkpoints"]

log = logging.getLogger(__name__)
DEFAULT_AUTOCHECKPOINT = 1000  # SQLite's own default (pages)


class _Checkpointer(threading.Thread):
    def __init__(self, path: str) -> None:
        super().__init__(name="sqlite-checkpointer", daemon=True)
        self.path = path
        self.wake = threading.Event()
        self.stopping = False

    def run(self) -> None:
        con = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            while True:
                self.wake.wait()
                self.wake.clear()
                self._checkpoint(con)
                if self.stopping:
                    return
        finally:
            con.close()

    def _checkpoint(self, con: sqlite3.Connection) -> None:
        try:
            con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the pages stay in the WAL; the next checkpoint takes them
            log.warning("background checkpoint of %s failed: %s", self.path, exc)


def _set_autocheckpoint(dbapi_conn: Any, pages: int) -> None:
    if dbapi_conn is None:
        return
    try:
        dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")
    except sqlite3.Error as exc:  # a closed connection: nothing of it is used again
        log.warning("could not set wal_autocheckpoint=%d: %s", pages, exc)


@contextmanager
def background_checkpoints(engine: Engine) -> Iterator[Callable[[], None]]:
    """Checkpoints of a SQLite file database in a background thread for the ``with`` body; yields
    ``nudge``, to call after each commit. A no-op for other engines (``nudge`` does nothing)."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        yield lambda: None
        return

    def off(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        _set_autocheckpoint(dbapi_conn, 0)

    def back(dbapi_conn: Any, _record: Any) -> None:
        _set_autocheckpoint(dbapi_conn, DEFAULT_AUTOCHECKPOINT)

    worker = _Checkpointer(path)
    worker.start()
    event.listen(engine, "checkout", off)
    event.listen(engine, "checkin", back)
    try:
        yield worker.wake.set
    finally:
        event.remove(engine, "checkout", off)
        event.remove(engine, "checkin", back)
        worker.stopping = True
        worker.wake.set()
        worker.join()
