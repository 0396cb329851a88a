"""The ``ingest`` Prefect flow: per-file results, a rejected file does not stop the others, a summary artifact."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from marketplace.errors import RejectedFileError
from tests.support.ingest import distinct_texts, write_jsonl


def test_ingest_flow_over_a_provider_folder(prefect_harness: None, mkt_home: Path, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from sqlalchemy.exc import OperationalError

    from flows.ingest import ingest
    from marketplace.db.transient import is_retryable_idempotent_write_error

    texts = distinct_texts(9, max_chars=800)
    folder = tmp_path / "flow-provider"
    folder.mkdir()
    write_jsonl(folder / "1.jsonl", [{"text": t} for t in texts[:5]])
    (folder / "2_bad.jsonl").write_text("[1, 2, 3]\n")
    write_jsonl(folder / "3.jsonl", [{"text": t} for t in texts[3:9]])  # two texts repeat file 1

    results = ingest(str(folder), "flowco")
    assert [r["status"] for r in results] == ["accepted", "rejected", "accepted"]
    assert results[1]["reason_code"] == "json_array_not_jsonl"
    assert (results[0]["accepted"], results[2]["accepted"], results[2]["exact_duplicates"]) == (5, 6, 2)

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
    assert not is_retryable_idempotent_write_error(RejectedFileError("empty_file", "empty"))
    assert is_retryable_idempotent_write_error(OperationalError("select 1", {}, Exception("database is locked")))


def test_cli_and_flow_report_the_same_shape(prefect_harness: None, mkt_home: Path, tmp_path: Path) -> None:
    """``marketplace ingest`` and the ``ingest`` flow run one code path: same entries, file for file."""
    import json

    from typer.testing import CliRunner

    from flows.ingest import ingest
    from marketplace.cli.app import app

    texts = distinct_texts(6, max_chars=800)
    folder = tmp_path / "same-shape"
    folder.mkdir()
    write_jsonl(folder / "1.jsonl", [{"text": t} for t in texts[:4]] + [{"text": "short"}])
    (folder / "2_bad.jsonl").write_text("[1, 2, 3]\n")
    write_jsonl(folder / "3.jsonl", [{"text": t} for t in texts[2:]])

    cli = CliRunner().invoke(app, ["ingest", str(folder), "--provider", "shapeco", "--json"])
    assert cli.exit_code == 5, cli.output
    by_cli = json.loads(cli.stdout)["files"]
    by_flow = ingest(str(folder), "shapeco")  # the same bytes again: every accepted file is "existing"

    assert [r["status"] for r in by_cli] == ["accepted", "rejected", "accepted"]
    assert [r["status"] for r in by_flow] == ["existing", "rejected", "existing"]
    for c, f in zip(by_cli, by_flow, strict=True):
        assert set(c) == set(f)
        assert {k: v for k, v in c.items() if k not in ("status", "elapsed_s")} == {
            k: v for k, v in f.items() if k not in ("status", "elapsed_s")}
    assert by_cli[0]["quarantined"] == 1 and by_cli[2]["exact_duplicates"] == 2


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_serialization_failures_and_deadlocks_are_retried(sqlstate: str) -> None:
    from sqlalchemy.exc import DBAPIError

    from marketplace.db.transient import is_retryable_idempotent_write_error

    class Orig(Exception):
        pass

    orig = Orig("conflict")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    assert is_retryable_idempotent_write_error(DBAPIError("insert", {}, orig))
