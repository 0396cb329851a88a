"""The ``ingest`` Prefect flow: per-file results, a rejected file does not stop the others, a summary artifact."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.support.ingest import distinct_texts, write_jsonl

from marketplace.errors import RejectedFileError


def test_ingest_flow_over_a_provider_folder(prefect_harness: None, mkt_home: Path, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from sqlalchemy.exc import OperationalError

    from flows.ingest import ingest
    from tasks.ingest import is_retryable_ingest_error

    texts = distinct_texts(9, max_chars=800)
    folder = tmp_path / "flow-provider"
    folder.mkdir()
    write_jsonl(folder / "1.jsonl", [{"text": t} for t in texts[:5]])
    (folder / "2_bad.jsonl").write_text("[1, 2, 3]\n")
    write_jsonl(folder / "3.jsonl", [{"text": t} for t in texts[3:9]])  # two texts repeat file 1

    results = ingest(str(folder), "flowco")
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"]
    assert results[1]["reason_code"] == "json_array_not_jsonl"
    assert (results[0]["n_accepted"], results[2]["n_accepted"], results[2]["n_exact_duplicates"]) == (5, 6, 2)

    async def read() -> list:  # type: ignore[type-arg]
        async with get_client() as client:
            key_filter = ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-flowco"]))
            return await client.read_artifacts(artifact_filter=key_filter)

    artifacts = asyncio.run(read())
    assert artifacts and artifacts[0].type == "table"
    table = artifacts[0].data
    rows = table if isinstance(table, list) else __import__("json").loads(table)
    assert [(r["status"], r["accepted"], r["exact_duplicates"]) for r in rows] == [
        ("accepted", 5, 0), ("rejected", 0, 0), ("accepted", 6, 2)]

    # Retry policy: transient database errors yes, rejected files never.
    assert not is_retryable_ingest_error(RejectedFileError("empty_file", "empty"))
    assert is_retryable_ingest_error(OperationalError("select 1", {}, Exception("database is locked")))


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_serialization_failures_and_deadlocks_are_retried(sqlstate: str) -> None:
    from sqlalchemy.exc import DBAPIError

    from tasks.ingest import is_retryable_ingest_error

    class Orig(Exception):
        pass

    orig = Orig("conflict")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    assert is_retryable_ingest_error(DBAPIError("insert", {}, orig))
