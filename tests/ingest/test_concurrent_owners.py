"""Concurrent ingests on PostgreSQL give the links sequential ones give (real processes, started together).

- near-copies of the same texts ingested at once by two providers: exactly one first owner per text,
  the other linked to it;
- the same bytes ingested at once by two providers: one accepted submission and one copy, no
  unique-violation crash;
- the same bytes ingested at once twice by one provider: one submission, the other call finds it.
SQLite needs no test here: every transaction there starts with BEGIN IMMEDIATE, so writers take turns.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import Sample, Submission
from marketplace.ingest import DedupParams, IngestOptions, ingest_one_file
from tests.support.ingest import distinct_texts, write_jsonl
from tests.support.ingest_workers import ingest_worker

N_TEXTS = 40


def _run_together(db_url: str, jobs: list[tuple[str, str]]) -> list[dict]:
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    barrier = manager.Barrier(len(jobs))
    try:
        with ctx.Pool(len(jobs)) as pool:
            return pool.starmap(ingest_worker, [(db_url, path, provider, barrier) for path, provider in jobs])
    finally:
        manager.shutdown()


def _seed(session_factory: sessionmaker[Session], tmp_path: Path, texts: list[str]) -> None:
    """Both providers and the near-duplicate index exist before the race (on an empty database the first
    writer of the index row would hold the second back by accident, hiding the race)."""
    for i, provider in enumerate(("alpha", "beta")):
        path = write_jsonl(tmp_path / f"seed-{provider}.jsonl", [{"text": texts[i]}])
        assert ingest_one_file(session_factory, path, provider,
                               IngestOptions(dedup_params=DedupParams())).status == "accepted"


def _edited(text: str) -> str:
    """A plainly edited copy: one word dropped, case changed."""
    words = text.split()
    return " ".join(words[:3] + words[4:]).upper()


@pytest.mark.slow
def test_near_copies_at_once_have_exactly_one_first_owner(
        pg_db_url: str, pg_session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    texts, seeds = distinct_texts(N_TEXTS + 2, min_words=15)[:N_TEXTS], distinct_texts(N_TEXTS + 2, min_words=15)[-2:]
    _seed(pg_session_factory, tmp_path, seeds)
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in texts])
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": _edited(t)} for t in texts])
    results = _run_together(pg_db_url, [(str(a), "alpha"), (str(b), "beta")])
    assert [r["status"] for r in results] == ["accepted", "accepted"], results
    with pg_session_factory() as s:
        first_owners = s.scalar(select(func.count()).select_from(Sample).where(Sample.duplicate_of_id.is_(None)))
        linked = s.scalar(select(func.count()).select_from(Sample).where(Sample.duplicate_of_id.is_not(None)))
    assert (first_owners, linked) == (N_TEXTS + 2, N_TEXTS)  # as if ingested one after the other
    assert sorted(r["near_duplicates"] for r in results) == [0, N_TEXTS]


@pytest.mark.slow
def test_exact_copies_at_once_give_one_original_and_one_copy(
        pg_db_url: str, pg_session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    texts, seeds = distinct_texts(N_TEXTS + 2)[:N_TEXTS], distinct_texts(N_TEXTS + 2)[-2:]
    _seed(pg_session_factory, tmp_path, seeds)
    path = write_jsonl(tmp_path / "same.jsonl", [{"text": t} for t in texts])
    results = _run_together(pg_db_url, [(str(path), "alpha"), (str(path), "beta"), (str(path), "alpha")])
    statuses = sorted(r["status"] for r in results)
    assert "crashed" not in statuses and "failed" not in statuses, results
    assert statuses == ["accepted", "copy", "existing"], results
    with pg_session_factory() as s:
        subs = s.execute(select(Submission.provider_id, Submission.status).order_by(Submission.id)).all()
        first_owners = s.scalar(select(func.count()).select_from(Sample).where(Sample.duplicate_of_id.is_(None)))
    assert len(subs) == 4 and sorted(str(st.value) for _, st in subs[2:]) == ["accepted", "copy"]
    assert first_owners == len(texts) + 2
