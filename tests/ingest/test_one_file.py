"""One file in its own transaction (marketplace.ingest.ingest_one_file): the one result shape, refusals as
results, transient conflicts retried. Both engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import Provider, Sample, Submission
from marketplace.ingest import FieldMapping, FileIngestResult, IngestOptions, ingest_one_file
from marketplace.ingest import one_file as one_file_module
from marketplace.ingest.ingest import ingest_file
from tests.support.ingest import distinct_texts, write_jsonl

INGESTED_KEYS = {"file", "status", "submission_id", "records", "accepted", "quarantined", "exact_duplicates",
                 "near_duplicates", "reasons", "field_mapping", "copy_of_submission_id", "elapsed_s"}
REFUSED_KEYS = {"file", "status", "reason_code", "location", "error"}


def _counts(factory: sessionmaker[Session]) -> tuple[int, int, int]:
    with factory() as s:
        return tuple(int(s.scalar(select(func.count()).select_from(t)) or 0)  # type: ignore[return-value]
                     for t in (Provider, Submission, Sample))


def test_accepted_existing_copy_and_rejected(session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": t} for t in distinct_texts(4, max_chars=600)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("[1, 2, 3]\n")

    first = ingest_one_file(session_factory, good, "acme")
    assert (first.status, first.records, first.accepted, first.exact_duplicates) == ("accepted", 4, 4, 0)
    assert set(first.as_dict()) == INGESTED_KEYS and first.as_dict()["file"] == str(good)
    again = ingest_one_file(session_factory, good, "acme")
    assert again.status == "existing" and again.submission_id == first.submission_id
    copy = ingest_one_file(session_factory, good, "other")
    assert copy.status == "copy" and copy.exact_duplicates == 4 and copy.copy_of_submission_id == first.submission_id

    before = _counts(session_factory)
    rejected = ingest_one_file(session_factory, bad, "newcomer")
    assert (rejected.status, rejected.reason_code) == ("rejected", "json_array_not_jsonl") and rejected.refused
    assert set(rejected.as_dict()) == REFUSED_KEYS and "json_array_not_jsonl" in (rejected.message or "")
    assert _counts(session_factory) == before  # nothing written, not even the provider
    assert rejected.summary_row()["reason"] == "json_array_not_jsonl"

    remapped = ingest_one_file(session_factory, good, "acme", IngestOptions(mapping=FieldMapping(text_field="body")))
    assert remapped.status == "rejected" and remapped.reason_code == "ConflictError"


def test_transient_conflicts_are_retried(session_factory: sessionmaker[Session], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    good = write_jsonl(tmp_path / "good.jsonl", [{"text": t} for t in distinct_texts(3, max_chars=600)])
    calls: list[int] = []

    def flaky(session: Session, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        report = ingest_file(session, *args, **kwargs)
        if len(calls) == 1:  # written, then the commit is refused: the whole unit of work must roll back
            raise OperationalError("COMMIT", {}, Exception("database is locked"))
        return report

    monkeypatch.setattr(one_file_module, "ingest_file", flaky)
    result = ingest_one_file(session_factory, good, "acme")
    assert len(calls) == 2 and result.status == "accepted" and result.accepted == 3
    assert _counts(session_factory) == (1, 1, 3)


def test_a_failure_keeps_the_shape() -> None:
    failed = FileIngestResult.failed("x.jsonl", RuntimeError("database unreachable"))
    assert failed.as_dict() == {"file": "x.jsonl", "status": "failed", "reason_code": "RuntimeError",
                                "location": None, "error": "database unreachable"}
