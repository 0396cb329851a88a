"""Readers per format (JSONL, CSV, TSV, Parquet, saved HF datasets, .gz, .zip), detection, mapping, batching."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marketplace.errors import RejectedFileError
from marketplace.ingest import FieldMapping, IngestLimits, normalise_text, read_normalised_records
from marketplace.ingest.records import RecordStream
from marketplace.ingest.sources import open_source
from tests.support.ingest import real_texts, write_jsonl


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return real_texts(min_words=8, max_chars=1500)[:40]


def _csv_bytes(rows: list[list[str]], delimiter: str = ",") -> bytes:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def _parquet(path: Path, texts: list[str], row_group_size: int = 7) -> Path:
    table = pa.table({"text": texts, "source": ["python-docs"] * len(texts), "licence": ["PSF-2.0"] * len(texts),
                      "n": list(range(len(texts)))})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_jsonl_keeps_order_metadata_and_locations(tmp_path: Path, texts: list[str]) -> None:
    lines = [json.dumps({"text": t, "source": f"src-{i}", "license": "PSF-2.0"}) for i, t in enumerate(texts[:5])]
    lines.insert(2, "")  # a blank line: skipped, but line numbers stay physical
    path = tmp_path / "a.jsonl"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")  # CRLF line endings
    records = read_normalised_records(path)
    assert [r.text for r in records] == [normalise_text(t) for t in texts[:5]]
    assert [r.record_index for r in records] == [0, 1, 2, 3, 4]
    assert [r.location for r in records] == ["line 1", "line 2", "line 4", "line 5", "line 6"]
    assert [r.source for r in records] == [f"src-{i}" for i in range(5)]
    assert {r.licence for r in records} == {"PSF-2.0"}  # "license" accepted as the metadata spelling
    assert all(r.prompt_chars is None for r in records)


def test_csv_with_quoted_newlines_and_commas(tmp_path: Path, texts: list[str]) -> None:
    multi = "first line, with a comma\nsecond line \"quoted\" here"
    rows = [["id", "text", "source"], ["1", texts[0], "a"], ["2", multi, "b"], ["3", texts[1], "c"]]
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv_bytes(rows))  # with a UTF-8 byte-order mark, as spreadsheets write
    records = read_normalised_records(path)
    assert [r.text for r in records] == [normalise_text(texts[0]), multi, normalise_text(texts[1])]
    assert [r.location for r in records] == ["row 1 (line 2)", "row 2 (line 3)", "row 3 (line 5)"]
    assert [r.source for r in records] == ["a", "b", "c"]


def test_tsv(tmp_path: Path, texts: list[str]) -> None:
    path = tmp_path / "a.tsv"
    path.write_bytes(_csv_bytes([["text"], *[[t] for t in texts[:3]]], delimiter="\t"))
    assert [r.text for r in read_normalised_records(path)] == [normalise_text(t) for t in texts[:3]]


def test_parquet_streams_row_groups_in_batches(tmp_path: Path, texts: list[str]) -> None:
    path = _parquet(tmp_path / "a.parquet", texts, row_group_size=7)
    limits = IngestLimits(batch_size=5)
    stream = RecordStream(open_source(path, None, limits), FieldMapping(), limits)
    batches = list(stream.batches())
    assert len(batches) >= len(texts) // 7  # several record batches, never the whole table at once
    assert all(len(b.records) <= 7 for b in batches)
    records = [r for b in batches for r in b.records]
    assert [r.text for r in records] == [normalise_text(t) for t in texts]
    assert records[12].location == "row 13"
    assert {r.licence for r in records} == {"PSF-2.0"}


def test_jsonl_is_read_in_batches(tmp_path: Path, texts: list[str]) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": t} for t in texts[:23]])
    limits = IngestLimits(batch_size=5)
    stream = RecordStream(open_source(path, None, limits), FieldMapping(), limits)
    sizes = [len(b.records) for b in stream.batches()]
    assert sizes == [5, 5, 5, 5, 3]
    stream.finish()
    assert stream.n_records == 23 and stream.n_quarantined == 0


def test_hf_dataset_and_dataset_dict(tmp_path: Path, texts: list[str]) -> None:
    import datasets

    ds = datasets.Dataset.from_dict({"instruction": texts[:6], "output": texts[6:12], "n": list(range(6))})
    ds.save_to_disk(str(tmp_path / "single"))
    records = read_normalised_records(tmp_path / "single")
    assert [r.text for r in records] == [normalise_text(a) + "\n" + normalise_text(b)
                                         for a, b in zip(texts[:6], texts[6:12], strict=True)]
    assert [r.prompt_chars for r in records] == [len(normalise_text(a)) for a in texts[:6]]

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts[:4]}),
                               "test": datasets.Dataset.from_dict({"text": texts[4:6]})})
    dd.save_to_disk(str(tmp_path / "dict"))
    records = read_normalised_records(tmp_path / "dict", fmt="hf")
    # Splits in sorted order (test, train), record indexes continue across splits.
    assert [r.text for r in records] == [normalise_text(t) for t in [*texts[4:6], *texts[:4]]]
    assert [r.record_index for r in records] == list(range(6))
    assert records[2].location == "split train: row 1"


def test_gzip_inputs(tmp_path: Path, texts: list[str]) -> None:
    jsonl = "".join(json.dumps({"text": t}) + "\n" for t in texts[:4]).encode()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(jsonl))
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(_csv_bytes([["text"], *[[t] for t in texts[:4]]])))
    _parquet(tmp_path / "c.parquet", texts[:4])
    (tmp_path / "c.parquet.gz").write_bytes(gzip.compress((tmp_path / "c.parquet").read_bytes()))
    expected = [normalise_text(t) for t in texts[:4]]
    for name in ("a.jsonl.gz", "b.csv.gz", "c.parquet.gz"):
        assert [r.text for r in read_normalised_records(tmp_path / name)] == expected, name
    assert open_source(tmp_path / "b.csv.gz", None, IngestLimits()).format_label == "csv+gz"


def test_zip_with_members_of_several_formats(tmp_path: Path, texts: list[str]) -> None:
    _parquet(tmp_path / "p.parquet", texts[8:10])
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("z_last.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in texts[:2]))
        zf.writestr("dir/", b"")
        zf.writestr("a_first.csv", _csv_bytes([["text"], *[[t] for t in texts[4:6]]]))
        zf.writestr("m_middle.parquet", (tmp_path / "p.parquet").read_bytes())
        zf.writestr("__MACOSX/._junk", b"\x00\x05")
        zf.writestr(".DS_Store", b"\x00\x00")
    records = read_normalised_records(path)
    assert [r.text for r in records] == [normalise_text(t) for t in [*texts[4:6], *texts[8:10], *texts[:2]]]
    assert records[0].location == "member a_first.csv: row 1 (line 2)"
    assert records[4].location == "member z_last.jsonl: line 1"


def test_format_detection_and_explicit_format(tmp_path: Path, texts: list[str]) -> None:
    (tmp_path / "noext").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:2]))
    assert len(read_normalised_records(tmp_path / "noext")) == 2  # sniffed: starts with "{"
    _parquet(tmp_path / "p.parquet", texts[:2])
    (tmp_path / "pq_noext").write_bytes((tmp_path / "p.parquet").read_bytes())
    assert len(read_normalised_records(tmp_path / "pq_noext")) == 2  # sniffed: PAR1 magic
    (tmp_path / "data.txt").write_bytes(_csv_bytes([["text"], [texts[0]]]))
    with pytest.raises(RejectedFileError) as info:
        read_normalised_records(tmp_path / "data.txt")
    assert info.value.reason_code == "unknown_format"
    assert [r.text for r in read_normalised_records(tmp_path / "data.txt", fmt="csv")] == [normalise_text(texts[0])]


def test_field_mapping_explicit_and_auto(tmp_path: Path, texts: list[str]) -> None:
    rows = [{"question": q, "answer": a, "body": q} for q, a in zip(texts[:3], texts[3:6], strict=True)]
    path = write_jsonl(tmp_path / "qa.jsonl", rows)
    auto = read_normalised_records(path)  # question/answer is an auto-detected pair
    assert [r.prompt_chars for r in auto] == [len(normalise_text(q)) for q in texts[:3]]
    assert auto[0].text == normalise_text(texts[0]) + "\n" + normalise_text(texts[3])
    explicit = read_normalised_records(path, mapping=FieldMapping(text_field="body"))
    assert [r.text for r in explicit] == [normalise_text(q) for q in texts[:3]]
    assert all(r.prompt_chars is None for r in explicit)
    swapped = read_normalised_records(path, mapping=FieldMapping(prompt_field="answer", response_field="question"))
    assert swapped[0].text.startswith(normalise_text(texts[3]) + "\n")
    both = write_jsonl(tmp_path / "both.jsonl", [{"text": texts[0], "prompt": "p" * 20, "response": "r" * 20}])
    assert read_normalised_records(both)[0].text == normalise_text(texts[0])  # "text" is tried first


def test_auto_mapping_uses_the_majority_not_the_first_record(tmp_path: Path, texts: list[str]) -> None:
    rows = [{"content": texts[0]}] + [{"prompt": t, "response": t[::-1]} for t in texts[1:10]]
    records = read_normalised_records(write_jsonl(tmp_path / "m.jsonl", rows),
                                      limits=IngestLimits(max_quarantine_fraction=0.5))
    assert len(records) == 9 and all(r.prompt_chars for r in records)


def test_content_hash_is_sha256_of_normalised_text(tmp_path: Path, texts: list[str]) -> None:
    import hashlib

    path = write_jsonl(tmp_path / "h.jsonl", [{"text": "  Caf\u0065\u0301   au\tlait, a long enough text  "}])
    [rec] = read_normalised_records(path)
    assert rec.text == "Caf\u00e9 au lait, a long enough text"
    assert rec.content_hash == hashlib.sha256(rec.text.encode()).hexdigest()
