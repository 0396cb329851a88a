"""Exact duplicates, idempotent re-ingest and copies, on SQLite and PostgreSQL.

Ownership invariants checked after every scenario (``_check_invariants``): every duplicate points at a
first owner; ``exact`` links join samples with the same content hash; the database refuses a second
first owner of a hash; submission counts match the samples and quarantined records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from marketplace.db import DuplicateKind, QuarantinedRecord, Sample, Submission, SubmissionStatus
from marketplace.db.base import utcnow
from marketplace.errors import ConflictError
from marketplace.ingest import (
    DedupParams,
    FieldMapping,
    IngestLimits,
    ingest_file,
    read_normalised_records,
    submission_params_sha256,
)
from tests.support.ingest import real_texts, table_fingerprint, write_jsonl


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return real_texts(min_words=12, max_chars=1500)[:60]


def _check_invariants(engine: Engine, *, counts: bool = True) -> None:
    owner = aliased(Sample)
    with Session(engine) as s:
        bad_target = s.execute(
            select(func.count()).select_from(Sample).join(owner, Sample.duplicate_of_id == owner.id)
            .where(owner.duplicate_of_id.is_not(None))
        ).scalar_one()
        assert bad_target == 0, "a duplicate points at another duplicate"
        bad_exact = s.execute(
            select(func.count()).select_from(Sample).join(owner, Sample.duplicate_of_id == owner.id)
            .where(Sample.duplicate_kind == DuplicateKind.EXACT, Sample.content_hash != owner.content_hash)
        ).scalar_one()
        assert bad_exact == 0, "an exact link between different contents"
        dup_owners = s.execute(
            select(Sample.content_hash).where(Sample.duplicate_of_id.is_(None))
            .group_by(Sample.content_hash).having(func.count() > 1)
        ).all()
        assert dup_owners == []
        for sub in s.execute(select(Submission)).scalars() if counts else ():
            n_samples = s.execute(select(func.count()).where(Sample.submission_id == sub.id)).scalar_one()
            n_q = s.execute(select(func.count()).where(QuarantinedRecord.submission_id == sub.id)).scalar_one()
            kinds = dict(s.execute(select(Sample.duplicate_kind, func.count()).where(Sample.submission_id == sub.id)
                                   .group_by(Sample.duplicate_kind)).all())
            assert (sub.n_accepted, sub.n_quarantined) == (n_samples, n_q)
            assert (sub.n_exact_duplicates, sub.n_near_duplicates) == (
                kinds.get(DuplicateKind.EXACT, 0), kinds.get(DuplicateKind.NEAR, 0))


def _ingest(engine: Engine, path: Path, provider: str, **kw: object):
    kw.setdefault("dedup_params", DedupParams())
    with Session(engine) as session, session.begin():
        return ingest_file(session, path, provider, **kw)  # type: ignore[arg-type]


def _samples(engine: Engine, submission_id: int) -> list[Sample]:
    with Session(engine) as s:
        return list(s.execute(select(Sample).where(Sample.submission_id == submission_id)
                              .order_by(Sample.record_index)).scalars())


def test_exact_duplicates_within_file_provider_and_across(engine: Engine, tmp_path: Path, texts: list[str]) -> None:
    t = texts
    # File 1: t0, t1, t0 (dup within file), "  T1 spacing " variant that normalises to t1 exactly.
    f1 = write_jsonl(tmp_path / "f1.jsonl", [{"text": t[0]}, {"text": t[1]}, {"text": t[0]},
                                             {"text": "  " + t[1].replace(" ", "   ") + " \n"}])
    r1 = _ingest(engine, f1, "alice")
    s1 = _samples(engine, r1.submission_id)
    assert [x.duplicate_of_id for x in s1] == [None, None, s1[0].id, s1[1].id]
    assert [x.duplicate_kind for x in s1] == [None, None, DuplicateKind.EXACT, DuplicateKind.EXACT]
    assert (r1.n_exact_duplicates, r1.n_near_duplicates, r1.n_first_owner) == (2, 0, 2)

    # File 2, same provider: t1 again (within provider) and a new text.
    r2 = _ingest(engine, write_jsonl(tmp_path / "f2.jsonl", [{"text": t[2]}, {"text": t[1]}]), "alice")
    s2 = _samples(engine, r2.submission_id)
    assert [(x.duplicate_of_id, x.duplicate_kind) for x in s2] == [(None, None), (s1[1].id, DuplicateKind.EXACT)]

    # File 3, another provider: t2 and t0 (across providers), linked to their first owners.
    r3 = _ingest(engine, write_jsonl(tmp_path / "f3.jsonl", [{"text": t[0]}, {"text": t[2]}, {"text": t[3]}]), "bob")
    s3 = _samples(engine, r3.submission_id)
    assert [x.duplicate_of_id for x in s3] == [s1[0].id, s2[0].id, None]
    assert r3.n_exact_duplicates == 2
    _check_invariants(engine)


def test_exact_duplicates_across_batches_of_one_file(engine: Engine, tmp_path: Path, texts: list[str]) -> None:
    rows = [{"text": x} for x in texts[:7]] * 3  # every text three times, batches of 4 records
    report = _ingest(engine, write_jsonl(tmp_path / "rep.jsonl", rows), "carol",
                     limits=IngestLimits(batch_size=4))
    samples = _samples(engine, report.submission_id)
    owners = {x.content_hash: x.id for x in samples[:7]}
    assert all(x.duplicate_of_id is None for x in samples[:7])
    assert all(x.duplicate_of_id == owners[x.content_hash] for x in samples[7:])
    assert report.n_exact_duplicates == 14
    _check_invariants(engine)


def test_same_bytes_same_provider_returns_the_existing_submission(engine: Engine, tmp_path: Path,
                                                                  texts: list[str]) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": x} for x in texts[:5]] + [{"text": "short"}])
    first = _ingest(engine, path, "alice")
    before = table_fingerprint(engine)
    again = _ingest(engine, path, "alice")
    assert again.existing and not first.existing
    assert again.submission_id == first.submission_id
    assert (again.n_records, again.n_accepted, again.reasons) == (6, 5, {"text_too_short": 1})
    assert table_fingerprint(engine) == before  # nothing written
    # A renamed copy of the same bytes is the same submission too.
    renamed = tmp_path / "renamed.jsonl"
    renamed.write_bytes(path.read_bytes())
    assert _ingest(engine, renamed, "alice").submission_id == first.submission_id
    # The same bytes with another explicit mapping are refused, not silently re-used.
    with pytest.raises(ConflictError):
        _ingest(engine, path, "alice", mapping=FieldMapping(text_field="body"))
    assert table_fingerprint(engine) == before


def test_same_bytes_from_another_provider_is_a_copy_that_is_never_first_owner(engine: Engine, tmp_path: Path,
                                                                               texts: list[str]) -> None:
    rows = [{"text": x} for x in texts[10:16]] + [{"text": texts[10]}, {"text": "tiny"}]
    path = write_jsonl(tmp_path / "orig.jsonl", rows)
    orig = _ingest(engine, path, "alice")
    index_rows_before = table_fingerprint(engine)["near_dup_bands"]
    copy_path = tmp_path / "stolen.jsonl"
    copy_path.write_bytes(path.read_bytes())
    copy = _ingest(engine, copy_path, "mallory")
    assert copy.status == SubmissionStatus.COPY.value and copy.copy_of_submission_id == orig.submission_id
    assert (copy.n_records, copy.n_accepted, copy.n_quarantined, copy.reasons) == (
        orig.n_records, orig.n_accepted, orig.n_quarantined, orig.reasons)
    assert copy.n_exact_duplicates + copy.n_near_duplicates == copy.n_accepted  # every sample a duplicate
    originals = {x.record_index: x for x in _samples(engine, orig.submission_id)}
    for x in _samples(engine, copy.submission_id):
        o = originals[x.record_index]
        assert x.duplicate_of_id == (o.duplicate_of_id or o.id)
        assert x.text == o.text and x.provider_id != o.provider_id
    with Session(engine) as s:
        q = s.execute(select(QuarantinedRecord.location, QuarantinedRecord.reason_code)
                      .where(QuarantinedRecord.submission_id == copy.submission_id)).all()
        sub = s.get(Submission, copy.submission_id)
        assert sub is not None and sub.status is SubmissionStatus.COPY
    assert q == [("line 8", "text_too_short")]
    assert table_fingerprint(engine)["near_dup_bands"] == index_rows_before  # copies add nothing to the index
    # Re-submitting the copy is idempotent for the copier too.
    assert _ingest(engine, copy_path, "mallory").submission_id == copy.submission_id
    _check_invariants(engine)


def test_database_refuses_a_second_first_owner(engine: Engine, tmp_path: Path, texts: list[str]) -> None:
    report = _ingest(engine, write_jsonl(tmp_path / "a.jsonl", [{"text": texts[20]}]), "alice")
    [owner] = _samples(engine, report.submission_id)
    row = {"submission_id": owner.submission_id, "provider_id": owner.provider_id, "record_index": 99,
           "text": owner.text, "content_hash": owner.content_hash, "n_chars": owner.n_chars, "created_at": utcnow()}
    with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
        s.execute(insert(Sample), [row])  # duplicate_of_id NULL: a second first owner
    with Session(engine) as s, s.begin():  # as a duplicate it is fine
        s.execute(insert(Sample), [{**row, "duplicate_of_id": owner.id, "duplicate_kind": "exact"}])
    _check_invariants(engine, counts=False)  # the hand-made row is not in the submission's counts


def test_exact_copy_of_a_near_duplicate_links_to_the_root(engine: Engine, tmp_path: Path, texts: list[str]) -> None:
    base = texts[30]
    variant = base.upper() + " EXTRA"
    a = _ingest(engine, write_jsonl(tmp_path / "a.jsonl", [{"text": base}]), "alice")
    b = _ingest(engine, write_jsonl(tmp_path / "b.jsonl", [{"text": variant}]), "bob")
    c = _ingest(engine, write_jsonl(tmp_path / "c.jsonl", [{"text": variant}]), "carol")
    [root] = _samples(engine, a.submission_id)
    [near] = _samples(engine, b.submission_id)
    [copy] = _samples(engine, c.submission_id)
    assert (near.duplicate_of_id, near.duplicate_kind) == (root.id, DuplicateKind.NEAR)
    assert (copy.duplicate_of_id, copy.duplicate_kind) == (root.id, DuplicateKind.NEAR)
    _check_invariants(engine)


def test_samples_match_read_normalised_records_and_carry_the_params_stamp(engine: Engine, tmp_path: Path,
                                                                        texts: list[str]) -> None:
    rows = [{"prompt": texts[40], "response": texts[41], "source": "docs", "licence": "PSF-2.0"},
            {"prompt": "x", "response": "y"}, {"prompt": texts[42], "response": texts[43]}]
    path = write_jsonl(tmp_path / "pr.jsonl", rows)
    limits = IngestLimits(max_quarantine_fraction=0.5)
    report = _ingest(engine, path, "erin", limits=limits)
    expected = read_normalised_records(path, limits=limits)
    stored = _samples(engine, report.submission_id)
    assert [(x.record_index, x.text, x.prompt_chars, x.content_hash, x.source, x.licence, x.n_chars)
            for x in stored] == [(r.record_index, r.text, r.prompt_chars, r.content_hash, r.source, r.licence,
                                  r.n_chars) for r in expected]
    assert report.field_mapping == {"prompt": "prompt", "response": "response"}
    assert report.params_sha256 == submission_params_sha256(limits, report.field_mapping, DedupParams())
    with Session(engine) as s:
        sub = s.get(Submission, report.submission_id)
        assert sub is not None and sub.params_sha256 == report.params_sha256
        assert sub.format == "jsonl" and sub.byte_size == path.stat().st_size
        assert stored[0].created_at.tzinfo is not None
    assert json.loads(json.dumps(report.reasons)) == {"text_too_short": 1}


def test_ingest_leaves_the_callers_transaction_settings_as_they_were(engine: Engine, tmp_path: Path,
                                                                     texts: list[str]) -> None:
    """The bulk path tunes the planner for its own statements only (PostgreSQL SET LOCAL), and never
    leaves a server-prepared statement behind: a prepared (generic) plan of its ``= ANY(list)``
    lookups would not see the list, and ``plan_cache_mode = force_custom_plan`` instead would
    re-plan every foreign-key check of every inserted row."""
    from sqlalchemy import text

    path = write_jsonl(tmp_path / "s.jsonl", [{"text": x} for x in texts[:40]])
    small_batches = IngestLimits(batch_size=4)  # 10 batches: every lookup runs more than psycopg's 5 times
    with Session(engine) as session, session.begin():
        if engine.dialect.name == "postgresql":
            raw = session.connection().connection.dbapi_connection
            threshold = raw.prepare_threshold  # type: ignore[union-attr]
            before = [session.execute(text(f"SHOW {name}")).scalar_one()
                      for name in ("enable_seqscan", "plan_cache_mode")]
        ingest_file(session, path, "frank", dedup_params=DedupParams(), limits=small_batches)
        if engine.dialect.name == "postgresql":
            after = [session.execute(text(f"SHOW {name}")).scalar_one()
                     for name in ("enable_seqscan", "plan_cache_mode")]
            assert after == before == ["on", "auto"]
            assert raw.prepare_threshold == threshold == 5  # type: ignore[union-attr]
            prepared = session.execute(text("SELECT statement FROM pg_prepared_statements")).scalars().all()
            assert not [s for s in prepared if "near_dup" in s or "content_hash" in s or "nextval" in s], prepared
        assert session.execute(select(func.count()).select_from(Sample)).scalar_one() == 40
