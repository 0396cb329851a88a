"""PostgreSQL and SQLite ingest the same files into the same catalog, whatever the index's memory budget.

The two engines take different code paths (COPY and binary aggregates against executemany and
``json_each``), and the near-duplicate index may be written once per file or many times over
(``PENDING_BYTES``): none of it may change who owns what. Three runs of the same four files (edited
and exact copies inside a file and across providers, quarantined records, a copy of a whole file,
small batches so that links cross batch boundaries) must leave identical reports, samples, links,
quarantine and near-duplicate index.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import (
    NearDupBand,
    NearDupSignature,
    QuarantinedRecord,
    Sample,
    Submission,
    create_db_engine,
    make_session_factory,
)
from marketplace.db.migrate import upgrade
from marketplace.ingest import DedupParams, IngestLimits, ingest_file, neardup
from tests.support.ingest import distinct_texts, write_jsonl

_WORD = re.compile(r"\w+")


def _edit(text: str, rng: random.Random, vocab: list[str]) -> str:
    words = text.split()
    for _ in range(max(1, len(words) // 12)):
        words[rng.randrange(len(words))] = rng.choice(vocab)
    return " ".join(words)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    rng = random.Random(11)
    texts = distinct_texts(330, min_words=12, seed=11)
    vocab = sorted({w for t in texts for w in _WORD.findall(t)})
    first, second, third = texts[:150], texts[150:250], texts[250:]
    a: list[Any] = [{"text": t} for t in first]
    for _ in range(15):  # near copies of earlier records of the same file, some in the same batch
        a.insert(rng.randrange(20, len(a)), {"text": _edit(rng.choice(first), rng, vocab)})
    for _ in range(10):
        a.insert(rng.randrange(20, len(a)), {"text": rng.choice(first)})
    a += [{"text": "too short"}, {"text": ""}, {"no_text": 1}]
    b = [{"text": _edit(t, rng, vocab)} for t in rng.sample(first, 40)]
    b += [{"text": t} for t in rng.sample(first, 20)] + [{"text": t} for t in second]
    b += [{"text": t.upper()} for t in rng.sample(second, 5)]
    rng.shuffle(b)
    c = [{"text": t} for t in third] + [{"text": _edit(t, rng, vocab)} for t in rng.sample(second, 10)]
    folder = tmp_path_factory.mktemp("agree")
    paths = [write_jsonl(folder / f"{name}.jsonl", rows) for name, rows in (("a", a), ("b", b), ("c", c))]
    return [(paths[0], "alpha"), (paths[1], "beta"), (paths[1], "gamma"), (paths[2], "alpha")]


def _run(factory: sessionmaker[Session], files: list[tuple[Path, str]]) -> dict[str, Any]:
    reports = []
    for path, provider in files:
        with factory() as session, session.begin():
            r = ingest_file(session, path, provider, limits=IngestLimits(batch_size=16), dedup_params=DedupParams())
        reports.append((r.status, r.n_records, r.n_accepted, r.n_quarantined, r.n_exact_duplicates,
                        r.n_near_duplicates, r.reasons))
    with factory() as s:
        file_of = {sid: i for i, sid in enumerate(s.scalars(select(Submission.id).order_by(Submission.id)))}
        rows = s.execute(select(Sample.id, Sample.submission_id, Sample.record_index, Sample.duplicate_of_id,
                                Sample.duplicate_kind, Sample.content_hash, Sample.text)).all()
        where = {r.id: (file_of[r.submission_id], r.record_index) for r in rows}
        quarantine = s.execute(select(QuarantinedRecord.submission_id, QuarantinedRecord.record_index,
                                      QuarantinedRecord.reason_code)).all()
        signatures = s.execute(select(NearDupSignature.sample_id, NearDupSignature.signature)).all()
        bands = s.execute(select(NearDupBand.band_key, NearDupBand.sample_id)).all()
    return {
        "reports": reports,
        "samples": sorted((where[r.id], r.duplicate_kind, where.get(r.duplicate_of_id), r.content_hash, r.text)
                          for r in rows),
        "quarantine": sorted((file_of[q[0]], q[1], q[2]) for q in quarantine),
        "signatures": sorted((where[sid], bytes(sig)) for sid, sig in signatures),
        "bands": sorted((where[sid], key) for key, sid in bands),
    }


def test_both_engines_and_any_index_budget_give_the_same_catalog(
        files: list[tuple[Path, str]], tmp_path: Path, pg_session_factory: sessionmaker[Session],
        monkeypatch: pytest.MonkeyPatch) -> None:
    engines: list[Engine] = []
    try:
        sqlite = create_db_engine(f"sqlite:///{tmp_path / 'default.db'}")
        sqlite_small = create_db_engine(f"sqlite:///{tmp_path / 'small.db'}")
        engines += [sqlite, sqlite_small]
        for eng in engines:
            upgrade(eng)
        reference = _run(make_session_factory(sqlite), files)
        # ~7 samples per flush: the index is written many times within each file.
        monkeypatch.setattr(neardup, "PENDING_BYTES", 7000)
        small = _run(make_session_factory(sqlite_small), files)
        postgres = _run(pg_session_factory, files)
    finally:
        for eng in engines:
            eng.dispose()

    status, _, _, n_quarantined, n_exact, n_near, _ = zip(*reference["reports"], strict=True)
    assert status == ("accepted", "accepted", "copy", "accepted")
    assert n_quarantined[0] == 3 and n_exact[0] >= 5 and n_near[0] >= 12 and n_exact[1] >= 15 and n_near[1] >= 35
    assert n_near[3] >= 8 and len(reference["bands"]) == 20 * len(reference["signatures"]) > 300
    assert small == reference
    assert postgres == reference
