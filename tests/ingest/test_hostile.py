"""The hostile-input suite: every bad file is rejected whole or has its bad records quarantined, each
with a specific reason code, and a rejected file leaves the database exactly as it was.

Each case builds one file in ``tmp_path``. File-level cases must raise ``RejectedFileError`` with the
expected code, and afterwards every table's row count and content hash must equal the snapshot taken
just before (the database already holds data from earlier ingests). Record-level cases mix 20 good
records with the bad one: the file is accepted and the bad record is in ``quarantined_records`` with
the expected code and location.

Both engines: one migrated database per engine for the whole module (the per-test ``engine`` fixture
would migrate a fresh schema for each of the ~150 tests; the snapshot taken before each case makes
the cases independent anyway). The 50 MB single line runs on both engines too: it never reaches the
database, and reading it with the bounded buffer takes well under a second.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from marketplace.db import QuarantinedRecord, Submission, create_db_engine
from marketplace.db.migrate import upgrade
from marketplace.errors import RejectedFileError
from marketplace.ingest import DedupParams, FieldMapping, IngestLimits, ReasonCode, ingest_file
from tests.support.databases import drop_postgres_schema, make_fresh_postgres_url, postgres_url_or_skip
from tests.support.ingest import real_texts, table_fingerprint, write_jsonl

R = ReasonCode
Builder = Callable[[Path, list[str]], Path]


# ---------------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    build: Callable[[Path, list[str]], Path]
    code: ReasonCode
    level: str  # "file" (rejected) | "record" (quarantined)
    location: str | None = None  # expected location of the quarantined record / rejection (substring)
    kwargs: dict[str, Any] = field(default_factory=dict)  # fmt / mapping for ingest_file
    limits: dict[str, Any] = field(default_factory=dict)  # IngestLimits overrides


def _good(texts: list[str], n: int = 20) -> list[dict[str, str]]:
    return [{"text": t, "source": "python-docs", "licence": "PSF-2.0"} for t in texts[:n]]


def _jsonl_with(bad_line: bytes, *, name: str = "data.jsonl") -> Callable[[Path, list[str]], Path]:
    """20 good JSON lines, then ``bad_line`` (line 21)."""

    def build(d: Path, texts: list[str]) -> Path:
        body = b"".join(json.dumps(r).encode() + b"\n" for r in _good(texts)) + bad_line + b"\n"
        p = d / name
        p.write_bytes(body)
        return p

    return build


def _jsonl_obj(obj: dict[str, Any]) -> Callable[[Path, list[str]], Path]:
    return _jsonl_with(json.dumps(obj).encode())


def _write(name: str, data: bytes) -> Callable[[Path, list[str]], Path]:
    def build(d: Path, texts: list[str]) -> Path:
        p = d / name
        p.write_bytes(data)
        return p

    return build


def _good_jsonl_bytes(texts: list[str], n: int = 20) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in _good(texts, n))


def _csv(header: str, rows: list[str], name: str = "data.csv", encoding_bad: bytes | None = None) -> Builder:
    def build(d: Path, texts: list[str]) -> Path:
        lines = [header] + [f'"{t.replace(chr(34), chr(34) * 2)}",python-docs' for t in texts[:20]] + rows
        data = ("\n".join(lines) + "\n").encode()
        if encoding_bad is not None:
            data += encoding_bad
        p = d / name
        p.write_bytes(data)
        return p

    return build


def _parquet_table(texts: list[str]) -> pa.Table:
    return pa.table({"text": texts[:20], "source": ["python-docs"] * 20})


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _build_parquet(mutate: Callable[[bytes], bytes], name: str = "data.parquet") -> Builder:
    def build(d: Path, texts: list[str]) -> Path:
        p = d / name
        p.write_bytes(mutate(_parquet_bytes(_parquet_table(texts))))
        return p

    return build


def _zip(members: Callable[[list[str]], list[tuple[zipfile.ZipInfo | str, bytes]]], name: str = "data.zip") -> Builder:
    def build(d: Path, texts: list[str]) -> Path:
        p = d / name
        with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for info, data in members(texts):
                zf.writestr(info, data)
        return p

    return build


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _mark_encrypted(path: Path) -> Path:
    """Set the "encrypted" flag bit in every local and central header (zipfile cannot write real
    encryption, and the flag is what readers go by)."""
    data = bytearray(path.read_bytes())
    for sig, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            data[i + flag_offset] |= 0x1
            start = i + 4
    path.write_bytes(bytes(data))
    return path


def _dir_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
    return info


def _gz(data_fn: Callable[[list[str]], bytes], name: str = "data.jsonl.gz",
        mutate: Callable[[bytes], bytes] = lambda b: b) -> Builder:
    def build(d: Path, texts: list[str]) -> Path:
        p = d / name
        p.write_bytes(mutate(gzip.compress(data_fn(texts), mtime=0)))
        return p

    return build


def _flip_middle(data: bytes) -> bytes:
    b = bytearray(data)
    for i in range(len(b) // 2, len(b) // 2 + 16):
        b[i] ^= 0xFF
    return bytes(b)


def _symlink(d: Path, texts: list[str]) -> Path:
    target = d / "real.jsonl"
    target.write_bytes(_good_jsonl_bytes(texts))
    link = d / "link.jsonl"
    link.symlink_to(target)
    return link


def _hf_corrupt(d: Path, texts: list[str]) -> Path:
    folder = d / "hf_broken"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}],
                                                    "_fingerprint": "x", "_format_type": None}))
    (folder / "dataset_info.json").write_text("{}")
    (folder / "data-00000-of-00001.arrow").write_bytes(b"not arrow at all" * 10)
    return folder


def _plain_folder(d: Path, texts: list[str]) -> Path:
    folder = d / "just_a_folder"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(_good_jsonl_bytes(texts))
    return folder


def _hf_with_empty_text(d: Path, texts: list[str]) -> Path:
    import datasets

    folder = d / "hf_ds"
    datasets.Dataset.from_dict({"text": [*texts[:20], "   "]}).save_to_disk(str(folder))
    return folder


def _parquet_with_null(d: Path, texts: list[str]) -> Path:
    p = d / "nulls.parquet"
    pq.write_table(pa.table({"text": [*texts[:20], None]}), p)
    return p


def _huge_line(d: Path, texts: list[str]) -> Path:
    """20 good lines, then one 50 MB line (a JSON object with a 50 MB string), then one more good line."""
    p = d / "huge.jsonl"
    with p.open("wb") as fh:
        fh.write(_good_jsonl_bytes(texts))
        fh.write(b'{"text": "')
        chunk = b"x" * (1 << 20)
        for _ in range(50):
            fh.write(chunk)
        fh.write(b'"}\n')
        fh.write(json.dumps({"text": texts[25]}).encode() + b"\n")
    return p


CASES: list[Case] = [
    # ---------------- file level: rejected whole ----------------
    Case("empty_file", _write("empty.jsonl", b""), R.EMPTY_FILE, "file"),
    Case("blank_lines_only", _write("blank.jsonl", b"\n  \n\t\n"), R.NO_RECORDS, "file"),
    Case("header_only_csv", _write("header.csv", b"text,source\n"), R.NO_RECORDS, "file"),
    Case("missing_file", lambda d, t: d / "nope.jsonl", R.FILE_NOT_FOUND, "file"),
    Case("utf16_bom", lambda d, t: _write("u16.jsonl", "\ufeff".encode("utf-16-le")
                                           + _good_jsonl_bytes(t).decode().encode("utf-16-le"))(d, t),
         R.UNSUPPORTED_ENCODING, "file"),
    Case("utf16_without_bom",
         lambda d, t: _write("u16nobom.jsonl", _good_jsonl_bytes(t).decode().encode("utf-16-le"))(d, t),
         R.BINARY_CONTENT, "file"),
    Case("binary_garbage", _write("garbage.jsonl", bytes(range(256)) * 64), R.BINARY_CONTENT, "file"),
    Case("json_array_not_jsonl", lambda d, t: _write("array.jsonl", json.dumps(_good(t), indent=1).encode())(d, t),
         R.JSON_ARRAY_NOT_JSONL, "file"),
    Case("unknown_format", _write("data.bin", b"hello, this is not a known format\n"), R.UNKNOWN_FORMAT, "file"),
    Case("parquet_declared_as_csv", _build_parquet(lambda b: b), R.FORMAT_MISMATCH, "file", kwargs={"fmt": "csv"}),
    Case("wrong_parquet_magic", _build_parquet(lambda b: b"PAR2" + b[4:]), R.PARQUET_BAD_MAGIC, "file"),
    Case("truncated_parquet_footer", _build_parquet(lambda b: b[: len(b) - 100]), R.PARQUET_TRUNCATED, "file"),
    Case("corrupt_parquet_metadata", _build_parquet(lambda b: b[:-8] + (2**31 - 1).to_bytes(4, "little") + b"PAR1"),
         R.PARQUET_CORRUPT, "file"),
    Case("parquet_text_column_is_int",
         lambda d, t: (pq.write_table(pa.table({"text": list(range(20))}), d / "ints.parquet"), d / "ints.parquet")[1],
         R.WRONG_FIELD_TYPE, "file"),
    Case("wrong_field_mapping_explicit", lambda d, t: write_jsonl(d / "m.jsonl", _good(t)), R.WRONG_FIELD_MAPPING,
         "file", kwargs={"mapping": FieldMapping(text_field="body")}),
    Case("no_text_field_auto", lambda d, t: write_jsonl(d / "nt.jsonl", [{"foo": x, "bar": 1} for x in t[:20]]),
         R.WRONG_FIELD_MAPPING, "file"),
    Case("csv_wrong_prompt_mapping", _csv("text,source", []), R.WRONG_FIELD_MAPPING, "file",
         kwargs={"mapping": FieldMapping(prompt_field="q", response_field="a")}),
    Case("schema_drift_jsonl", lambda d, t: write_jsonl(d / "drift.jsonl", _good(t, 14)
                                                        + [{"content": x, "meta": {"k": 1}} for x in t[14:20]]),
         R.SCHEMA_DRIFT, "file", location="line 15"),
    Case("schema_drift_between_zip_members",
         _zip(lambda t: [("a.csv", ("text\n" + "\n".join(f'"{x}"' for x in t[:10]) + "\n").encode()),
                         ("b.csv", ("body\n" + "\n".join(f'"{x}"' for x in t[10:20]) + "\n").encode())]),
         R.SCHEMA_DRIFT, "file", location="b.csv"),
    Case("too_many_quarantined", lambda d, t: _write("bad.jsonl", _good_jsonl_bytes(t, 10)
                                                     + b"{not json}\n" * 10)(d, t),
         R.TOO_MANY_QUARANTINED, "file"),
    Case("csv_unmatched_quote", _csv("text,source", ['"this quote never closes,python-docs', "more,rows"]),
         R.CSV_UNMATCHED_QUOTE, "file", location="line 22"),
    Case("csv_duplicate_header", _csv("text,text", []), R.CSV_BAD_HEADER, "file"),
    Case("csv_physical_line_too_long", _csv("text,source", ["y" * 5000 + ",python-docs"]), R.CSV_LINE_TOO_LONG,
         "file", limits={"max_line_bytes": 4096}, location="line 22"),
    Case("oversize_file", lambda d, t: write_jsonl(d / "big.jsonl", _good(t)), R.FILE_TOO_LARGE, "file",
         limits={"max_file_bytes": 1000}),
    Case("symlink_file", _symlink, R.SYMLINK_NOT_ALLOWED, "file"),
    Case("not_a_dataset_folder", _plain_folder, R.NOT_A_DATASET_FOLDER, "file"),
    Case("hf_dataset_corrupt", _hf_corrupt, R.HF_DATASET_CORRUPT, "file"),
    Case("zip_bomb", _zip(lambda t: [("zeros.jsonl", b"\0" * (20 * 1024 * 1024))]), R.COMPRESSION_RATIO_TOO_HIGH,
         "file"),
    Case("zip_over_uncompressed_limit", _zip(lambda t: [("a.jsonl", _good_jsonl_bytes(t))]),
         R.DECOMPRESSED_TOO_LARGE, "file", limits={"max_uncompressed_bytes": 2000}),
    Case("zip_slip_path", _zip(lambda t: [("../../evil.jsonl", _good_jsonl_bytes(t))]), R.ZIP_UNSAFE_PATH, "file"),
    Case("zip_absolute_path", _zip(lambda t: [("/etc/evil.jsonl", _good_jsonl_bytes(t))]), R.ZIP_UNSAFE_PATH, "file"),
    Case("zip_symlink_member", _zip(lambda t: [(_symlink_info("link.jsonl"), b"/etc/passwd")]), R.ZIP_SYMLINK, "file"),
    Case("zip_encrypted_member",
         lambda d, t: _mark_encrypted(_zip(lambda t2: [("a.jsonl", _good_jsonl_bytes(t2))])(d, t)),
         R.ZIP_ENCRYPTED, "file"),
    Case("zip_many_members", _zip(lambda t: [(f"m{i:02d}.jsonl", _good_jsonl_bytes(t[i:], 1)) for i in range(12)]),
         R.ZIP_TOO_MANY_MEMBERS, "file", limits={"max_archive_members": 10}),
    Case("zip_directory_only", _zip(lambda t: [(_dir_info("a/"), b""), (_dir_info("a/b/"), b"")]),
         R.ZIP_NO_DATA_MEMBERS, "file"),
    Case("zip_nested_archive", _zip(lambda t: [("inner.zip", b"PK\x05\x06" + b"\0" * 18)]), R.NESTED_ARCHIVE, "file"),
    Case("zip_unsupported_member", _zip(lambda t: [("notes.txt", b"hello")]), R.ZIP_UNSUPPORTED_MEMBER, "file"),
    Case("zip_truncated", lambda d, t: _write("cut.zip", _zip(lambda t2: [("a.jsonl", _good_jsonl_bytes(t2))])(d, t)
                                              .read_bytes()[:200])(d, t), R.ZIP_CORRUPT, "file"),
    Case("gz_bomb", _gz(lambda t: json.dumps({"text": t[0]}).encode() * 1 + b"\n" + b" " * (30 * 1024 * 1024)),
         R.COMPRESSION_RATIO_TOO_HIGH, "file"),
    Case("gz_over_uncompressed_limit", _gz(lambda t: _good_jsonl_bytes(t)), R.DECOMPRESSED_TOO_LARGE, "file",
         limits={"max_uncompressed_bytes": 2000}),
    Case("gz_truncated", _gz(lambda t: _good_jsonl_bytes(t), mutate=lambda b: b[: len(b) // 2]), R.GZIP_CORRUPT,
         "file"),
    Case("gz_corrupt_stream", _gz(lambda t: _good_jsonl_bytes(t), mutate=_flip_middle), R.GZIP_CORRUPT, "file"),
    Case("gz_name_but_not_gzip", lambda d, t: _write("plain.jsonl.gz", _good_jsonl_bytes(t))(d, t), R.GZIP_CORRUPT,
         "file"),
    Case("gz_inside_gz",
         lambda d, t: _write("double.jsonl.gz", gzip.compress(gzip.compress(_good_jsonl_bytes(t))))(d, t),
         R.NESTED_ARCHIVE, "file"),
    # ---------------- record level: quarantined, the file is accepted ----------------
    Case("truncated_jsonl_last_line", _jsonl_with(b'{"text": "a record cut in the mid'), R.INVALID_JSON, "record",
         location="line 21"),
    Case("invalid_utf8", _jsonl_with(b'{"text": "caf\xe9 is not utf-8 encoded here"}'), R.INVALID_UTF8, "record",
         location="line 21"),
    Case("raw_nul_byte", _jsonl_with(b'{"text": "a NUL \x00 byte inside the line"}'), R.NUL_BYTE, "record"),
    Case("escaped_nul_char", _jsonl_obj({"text": "an escaped NUL \u0000 inside the text"}), R.NUL_BYTE, "record"),
    Case("deeply_nested_json", _jsonl_with(b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), R.DEEPLY_NESTED,
         "record"),
    Case("nan_literal", _jsonl_with(b'{"text": "a fine text for a record", "score": NaN}'), R.NAN_LITERAL, "record"),
    Case("infinity_literal", _jsonl_with(b'{"text": "a fine text for a record", "score": -Infinity}'),
         R.NAN_LITERAL, "record"),
    Case("top_level_scalar", _jsonl_with(b"42"), R.NOT_AN_OBJECT, "record", location="line 21"),
    Case("top_level_string", _jsonl_with(b'"just a string on its own line"'), R.NOT_AN_OBJECT, "record"),
    Case("line_is_array", _jsonl_with(b'["an", "array", "instead", "of", "an", "object"]'), R.NOT_AN_OBJECT, "record"),
    Case("missing_text_field", _jsonl_obj({"other": "the text is under another name"}), R.MISSING_FIELD, "record"),
    Case("null_text", _jsonl_obj({"text": None}), R.MISSING_FIELD, "record"),
    Case("number_as_text", _jsonl_obj({"text": 1234567890123456789}), R.WRONG_TYPE, "record"),
    Case("object_as_text", _jsonl_obj({"text": {"nested": "value"}}), R.WRONG_TYPE, "record"),
    Case("whitespace_only_text", _jsonl_obj({"text": " \t\n  \u00a0 "}), R.EMPTY_TEXT, "record"),
    Case("too_short_text", _jsonl_obj({"text": "hi"}), R.TEXT_TOO_SHORT, "record"),
    Case("extremely_long_record", _jsonl_obj({"text": "word " * 40_000}), R.TEXT_TOO_LONG, "record"),
    Case("bell_control_character", _jsonl_obj({"text": "ring the bell \u0007 now please"}), R.CONTROL_CHARACTERS,
         "record"),
    Case("raw_control_byte_in_string", _jsonl_with(b'{"text": "a raw \x01 control byte in a string"}'),
         R.CONTROL_CHARACTERS, "record"),
    Case("c1_control_character", _jsonl_obj({"text": "mojibake \u0093quoted\u0094 text here"}),
         R.CONTROL_CHARACTERS, "record"),
    Case("lone_surrogate", _jsonl_with(b'{"text": "a lone \\ud800 surrogate escape"}'), R.INVALID_UNICODE, "record"),
    Case("metadata_too_long", _jsonl_obj({"text": "a fine text for a record", "source": "s" * 300}),
         R.METADATA_TOO_LONG, "record"),
    Case("licence_wrong_type", _jsonl_obj({"text": "a fine text for a record", "licence": 5}), R.WRONG_TYPE,
         "record"),
    Case("line_of_50_megabytes", _huge_line, R.LINE_TOO_LONG, "record", location="line 21"),
    Case("ragged_csv_row", _csv("text,source", ['"a row with too many fields here",python-docs,extra,extra']),
         R.RAGGED_ROW, "record", location="row 21"),
    Case("csv_invalid_utf8", _csv("text,source", [], encoding_bad=b'"caf\xe9 au lait in latin-1 here",x\n'),
         R.INVALID_UTF8, "record", location="row 21"),
    Case("csv_bad_quoting", _csv("text,source", ['"quoted"then text,python-docs']), R.CSV_MALFORMED_ROW, "record",
         location="row 21"),
    Case("prompt_with_empty_response",
         lambda d, t: write_jsonl(d / "pr.jsonl", [{"prompt": x, "response": y} for x, y in zip(t[:20], t[20:40],
                                                                                               strict=True)]
                                  + [{"prompt": "a question that is long enough", "response": ""}]),
         R.EMPTY_TEXT, "record", location="line 21"),
    Case("bad_line_inside_gzip", _gz(lambda t: _good_jsonl_bytes(t) + b"{broken\n"), R.INVALID_JSON, "record",
         location="line 21"),
    Case("bad_line_inside_zip_member",
         _zip(lambda t: [("part1.jsonl", _good_jsonl_bytes(t, 10)), ("part2.jsonl", _good_jsonl_bytes(t[10:], 10)
                                                                     + b"[1, 2]\n")]),
         R.NOT_AN_OBJECT, "record", location="member part2.jsonl: line 11"),
    Case("parquet_null_text", _parquet_with_null, R.MISSING_FIELD, "record", location="row 21"),
    Case("hf_dataset_empty_text", _hf_with_empty_text, R.EMPTY_TEXT, "record", location="row 21"),
]


def test_the_suite_is_large_and_specific() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)
    file_codes = {c.code for c in CASES if c.level == "file"}
    record_codes = {c.code for c in CASES if c.level == "record"}
    assert R.TOO_MANY_QUARANTINED in file_codes
    # Specific reasons: the catch-all code is used by exactly one case.
    assert sum(c.code is R.TOO_MANY_QUARANTINED for c in CASES) == 1
    assert len(file_codes) >= 30 and len(record_codes) >= 15


# ---------------------------------------------------------------------------------------------------
# Databases: one per engine for the module, pre-populated
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hostile_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        url, schema, base = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'h.db'}", None, None
    else:
        base = postgres_url_or_skip()
        url, schema = make_fresh_postgres_url(base)
    engine = create_db_engine(url)
    upgrade(engine)
    # Data already there, so "exactly as before" is not "empty".
    seed_dir = tmp_path_factory.mktemp("seed")
    texts = real_texts(min_words=8, max_chars=1000)
    with Session(engine) as session, session.begin():
        ingest_file(session, write_jsonl(seed_dir / "seed.jsonl", _good(texts[300:], 30)), "seed-provider",
                    dedup_params=DedupParams())
    try:
        yield engine
    finally:
        engine.dispose()
        if schema is not None and base is not None:
            drop_postgres_schema(base, schema)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_file(case: Case, hostile_engine: Engine, tmp_path: Path) -> None:
    offset = 21 * CASES.index(case)  # different texts per case: no case is a copy of another
    texts = real_texts(min_words=8, max_chars=1000)
    texts = (texts[offset % 280:] + texts)[:60]
    path = case.build(tmp_path, texts)
    limits = IngestLimits(**case.limits)
    provider = f"provider-{case.name}"
    before = table_fingerprint(hostile_engine)

    if case.level == "file":
        with pytest.raises(RejectedFileError) as info, Session(hostile_engine) as session, session.begin():
            ingest_file(session, path, provider, limits=limits, dedup_params=DedupParams(), **case.kwargs)
        assert info.value.reason_code == case.code.value, str(info.value)
        assert "fix:" in str(info.value)
        if case.location is not None:
            assert info.value.location is not None and case.location in info.value.location, info.value.location
        assert table_fingerprint(hostile_engine) == before
        return

    with Session(hostile_engine) as session, session.begin():
        report = ingest_file(session, path, provider, limits=limits, dedup_params=DedupParams(), **case.kwargs)
    assert report.n_quarantined == 1, report
    assert report.reasons == {case.code.value: 1}
    assert report.n_accepted == report.n_records - 1 >= 20
    with Session(hostile_engine) as session:
        rows = session.execute(
            select(QuarantinedRecord).where(QuarantinedRecord.submission_id == report.submission_id)
        ).scalars().all()
        sub = session.get(Submission, report.submission_id)
        assert sub is not None and sub.n_quarantined == 1
    assert [r.reason_code for r in rows] == [case.code.value]
    assert rows[0].detail
    if case.location is not None:
        assert case.location in rows[0].location, rows[0].location
    after = table_fingerprint(hostile_engine)
    changed = {t for t in after if after[t] != before[t]}
    assert changed <= {"providers", "submissions", "samples", "quarantined_records", "near_dup_indexes",
                       "near_dup_signatures", "near_dup_bands", "audit_events"}


def test_50mb_line_is_read_with_a_bounded_buffer(tmp_path: Path) -> None:
    """The 50 MB line never sits whole in memory: peak traced allocations stay far below its size."""
    import tracemalloc

    from marketplace.ingest import read_normalised_records

    path = _huge_line(tmp_path, real_texts(min_words=8, max_chars=1000)[:30])
    tracemalloc.start()
    try:
        records = read_normalised_records(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(records) == 21
    assert peak < 24 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for a 50 MiB line"


def test_rejected_file_leaves_no_provider_behind(hostile_engine: Engine, tmp_path: Path) -> None:
    """The provider row created for a rejected file is rolled back with everything else."""
    path = _write("empty.jsonl", b"")(tmp_path, [])
    with pytest.raises(RejectedFileError), Session(hostile_engine) as session, session.begin():
        ingest_file(session, path, "brand-new-provider-never-stored")
    with Session(hostile_engine) as session:
        from marketplace.db import Provider

        stmt = select(Provider).where(Provider.name == "brand-new-provider-never-stored")
        assert session.execute(stmt).first() is None


def test_rejection_in_a_late_batch_rolls_back_earlier_batches(hostile_engine: Engine, tmp_path: Path) -> None:
    """Samples written batch by batch before the file-level decision are rolled back with it."""
    texts = real_texts(min_words=8, max_chars=1000)
    lines = _good_jsonl_bytes(texts[100:], 20) + b"{broken\n" * 20  # 50% bad, discovered at the end
    path = _write("late.jsonl", lines)(tmp_path, texts)
    before = table_fingerprint(hostile_engine)
    with pytest.raises(RejectedFileError) as info, Session(hostile_engine) as session, session.begin():
        ingest_file(session, path, "late-provider", limits=IngestLimits(batch_size=5), dedup_params=DedupParams())
    assert info.value.reason_code == R.TOO_MANY_QUARANTINED.value
    assert "invalid_json x20" in str(info.value)
    assert table_fingerprint(hostile_engine) == before


def test_symlinks_are_not_followed_in_zip_listing(tmp_path: Path) -> None:
    """A zip-slip member is refused before anything is extracted or read."""
    path = _zip(lambda t: [("ok.jsonl", b'{"text": "fine text for the record"}\n'), ("../x.jsonl", b"{}")])(
        tmp_path, [])
    with pytest.raises(RejectedFileError) as info:
        from marketplace.ingest import read_normalised_records

        read_normalised_records(path)
    assert info.value.reason_code == R.ZIP_UNSAFE_PATH.value
    assert not (tmp_path.parent / "x.jsonl").exists()
    assert os.listdir(tmp_path) == ["data.zip"]
