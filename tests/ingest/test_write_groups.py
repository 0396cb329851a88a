"""Write groups: consecutive read batches joined for the database, with the links of the batches one by one."""

from __future__ import annotations

import codecs
import random
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import marketplace.ingest.params as ingest_params
from marketplace.db import Sample
from marketplace.ingest import DedupParams, IngestLimits, ingest_file
from marketplace.ingest.records import ValidatedBatch
from marketplace.ingest.validate import NormalisedRecord
from marketplace.ingest.write_groups import write_groups
from tests.support.ingest import real_texts, write_jsonl


def _record(i: int, text: str) -> NormalisedRecord:
    return NormalisedRecord(i, f"line {i + 1}", text, None, f"{i:064x}", None, None)


def _batches(sizes: list[int], chars: int = 10) -> list[tuple[ValidatedBatch, tuple[np.ndarray, ...] | None]]:
    out = []
    start = 0
    for n in sizes:
        recs = [_record(start + k, "x" * chars) for k in range(n)]
        rows = np.arange(start, start + n)
        sketch = (rows[:, None].astype(np.uint32), np.ones(n, dtype=bool), rows[:, None] * 10) if n else None
        out.append((ValidatedBatch(recs, []), sketch))
        start += n
    return out


def test_groups_join_consecutive_batches_up_to_the_record_cap_and_keep_sketches_aligned() -> None:
    groups = list(write_groups(_batches([3, 3, 0, 3, 3, 2]), max_records=6))
    assert [len(b.records) for b, _ in groups] == [6, 6, 2]  # 3+3 | 0+3+3 | 2
    indices = [r.record_index for b, _ in groups for r in b.records]
    assert indices == list(range(14))  # file order, nothing lost or repeated
    for batch, sketch in groups:
        assert sketch is not None
        rows = [r.record_index for r in batch.records]
        assert sketch[0][:, 0].tolist() == rows and sketch[2][:, 0].tolist() == [10 * r for r in rows]
        assert sketch[1].shape == (len(rows),)


def test_groups_also_end_at_the_text_cap_and_without_sketches() -> None:
    items = [(b, None) for b, _ in _batches([2, 2, 2, 2], chars=100)]
    groups = list(write_groups(items, max_records=1000, max_chars=350))
    assert [len(b.records) for b, _ in groups] == [4, 4]  # 400 code points end a group, not 1000 records
    assert all(s is None for _, s in groups)


def _near_copy(text: str, rng: random.Random) -> str:
    words = text.split()
    words[rng.randrange(len(words))] = "meanwhile"
    return " ".join(words)


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    rng = random.Random(7)
    texts = real_texts(min_words=30, max_chars=1500)[:40]
    out = [{"text": t} for t in texts]
    # exact and near copies of earlier records, some inside a read batch and some across batches
    for k in range(25):
        src = rng.choice(out[: 40 + k])["text"]
        out.append({"text": src if k % 2 else _near_copy(src, rng)})
    out.insert(5, {"text": "too short"})  # one quarantined record in the first batch
    return out


def _links(engine: Engine, path: Path, provider: str, limits: IngestLimits) -> list[tuple[int, int | None, str | None]]:
    with Session(engine) as session, session.begin():
        report = ingest_file(session, path, provider, limits=limits, dedup_params=DedupParams())
        samples = session.execute(select(Sample).where(Sample.submission_id == report.submission_id)
                                  .order_by(Sample.record_index)).scalars().all()
        first = {s.id: s.record_index for s in samples}
        # links as record positions, so two submissions of the same records compare equal
        return [(s.record_index, first.get(s.duplicate_of_id) if s.duplicate_of_id else None,
                 s.duplicate_kind.value if s.duplicate_kind else None) for s in samples]


def test_grouped_ingest_links_exactly_like_batch_by_batch(engine: Engine, tmp_path: Path,
                                                          rows: list[dict[str, str]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Read batches of 4 written one by one, and the same read batches joined 5 at a time: the same
    links record for record. The second run ingests the records ROT13-encoded: a bijection of the
    texts keeps every exact and near copy inside the file and shares no words with the first run,
    so neither run links to the other's samples."""
    monkeypatch.setattr(ingest_params, "READ_BATCH_RECORDS", 4)
    one_by_one = _links(engine, write_jsonl(tmp_path / "plain.jsonl", rows), "solo", IngestLimits(batch_size=4))
    encoded = [{"text": codecs.encode(r["text"], "rot13")} for r in rows]
    grouped = _links(engine, write_jsonl(tmp_path / "rot13.jsonl", encoded), "grouped", IngestLimits(batch_size=20))
    assert grouped == one_by_one
    kinds = [k for _, _, k in one_by_one]
    assert kinds.count("exact") >= 5 and kinds.count("near") >= 5  # the file exercises both rules
