"""Migration 0011: the redundant ``ix_samples_submission_id`` goes on both engines, lookups by submission
keep an index (the unique (submission_id, record_index) one), and the downgrade builds it again."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, inspect, text

from marketplace.db import create_db_engine
from marketplace.db.migrate import current_revision, downgrade, upgrade

_BEFORE = "0010_pricing_screening"
_REVISION = "0011_samples_redundant_index"
_BY_SUBMISSION = "SELECT record_index FROM samples WHERE submission_id = 1 ORDER BY record_index"


def _indexes(engine: Engine) -> dict[str, list[str]]:
    """Every index of ``samples`` (unique constraints included), by name: its columns."""
    found = {ix["name"]: list(ix["column_names"]) for ix in inspect(engine).get_indexes("samples")}
    found.update({uq["name"]: list(uq["column_names"]) for uq in inspect(engine).get_unique_constraints("samples")})
    return {str(name): cols for name, cols in found.items()}


def _plan(engine: Engine) -> str:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # three rows: make the planner show its index
            return "\n".join(conn.execute(text(f"EXPLAIN {_BY_SUBMISSION}")).scalars())
        return "\n".join(str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {_BY_SUBMISSION}")))


def _insert_samples(engine: Engine) -> None:
    now = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO providers (id, name, created_at) VALUES (1, 'acme', :t)"), {"t": now})
        conn.execute(text(
            "INSERT INTO submissions (id, provider_id, filename, format, content_sha256, byte_size, status, "
            "field_mapping, n_records, n_accepted, n_quarantined, n_exact_duplicates, n_near_duplicates, created_at) "
            "VALUES (1, 1, 'a.jsonl', 'jsonl', :sha, 10, 'accepted', '{}', 3, 3, 0, 0, 0, :t)"),
            {"sha": "0" * 64, "t": now})
        for i in range(3):
            conn.execute(text(
                "INSERT INTO samples (submission_id, provider_id, record_index, text, content_hash, n_chars, "
                "created_at) VALUES (1, 1, :i, :txt, :h, 20, :t)"),
                {"i": i, "txt": f"sample number {i} text", "h": f"{i:064d}", "t": now})


def test_the_redundant_sample_index_goes_and_comes_back(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        upgrade(engine, _BEFORE)
        _insert_samples(engine)
        before = _indexes(engine)
        assert before["ix_samples_submission_id"] == ["submission_id"]

        upgrade(engine, _REVISION)
        assert current_revision(engine) == _REVISION
        after = _indexes(engine)
        assert after == {k: v for k, v in before.items() if k != "ix_samples_submission_id"}
        assert after["uq_samples_submission_id_record_index"] == ["submission_id", "record_index"]
        plan = _plan(engine)
        assert "ix_samples_submission_id" not in plan
        assert ("uq_samples_submission_id_record_index" in plan if engine.dialect.name == "postgresql"
                else "USING COVERING INDEX sqlite_autoindex_samples_" in plan), plan
        with engine.begin() as conn:
            assert conn.execute(text(_BY_SUBMISSION)).scalars().all() == [0, 1, 2]

        downgrade(engine, _BEFORE)
        assert _indexes(engine) == before
        upgrade(engine, _REVISION)
        assert _indexes(engine) == after
    finally:
        engine.dispose()
