"""Process entry points for the concurrent-ingest tests (kept apart so that spawned children import little)."""

from __future__ import annotations

from typing import Any


def ingest_worker(url: str, path: str, provider: str, barrier: Any) -> dict[str, Any]:
    """Ingest ``path`` for ``provider`` once every worker is ready; the result as ``marketplace ingest --json``."""
    from marketplace.db import create_db_engine, make_session_factory
    from marketplace.ingest import DedupParams, IngestOptions, ingest_one_file

    engine = create_db_engine(url)
    factory = make_session_factory(engine)
    barrier.wait(timeout=120)
    try:
        result = ingest_one_file(factory, path, provider, IngestOptions(dedup_params=DedupParams()))
        return result.as_dict()
    except Exception as exc:  # a traceback in a child: report it to the test as data
        return {"status": "crashed", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        engine.dispose()
