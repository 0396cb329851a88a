"""Normalisation, per-record validation, parameter objects and the prefetch helper."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from marketplace.ingest import DedupParams, FieldMapping, IngestLimits, ReasonCode, normalise_text
from marketplace.ingest.mapping import ResolvedMapping
from marketplace.ingest.prefetch import prefetch
from marketplace.ingest.reasons import FILE_LEVEL_REASONS, FIX_HINTS, RECORD_LEVEL_REASONS
from marketplace.ingest.validate import NormalisedRecord, Problem, safe_excerpt, validate_fields
from marketplace.settings import Settings

TEXT = ResolvedMapping(text_field="text")
PR = ResolvedMapping(prompt_field="p", response_field="r")
LIMITS = IngestLimits()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a  b", "a b"),
        ("a\tb \t", "a b"),
        ("a\u00a0\u2003b", "a b"),  # no-break and em spaces inside a line
        ("line one  \nline two", "line one\nline two"),  # trailing spaces
        ("p\r\nq\rr\u2028s", "p\nq\nr\ns"),  # every line break becomes \n
        ("para one\n\n\n\n\npara two", "para one\n\npara two"),  # at most one blank line
        ("def f():\n    return  1", "def f():\n    return 1"),  # indentation kept, inner runs collapsed
        ("\n\n  leading and trailing  \n\n", "leading and trailing"),
        ("Cafe\u0301", "Caf\u00e9"),  # NFC
        ("\ufb01ne", "\ufb01ne"),  # NFC keeps compatibility ligatures (that would be NFKC)
    ],
)
def test_normalise_text(raw: str, expected: str) -> None:
    assert normalise_text(raw) == expected


@given(st.text())
def test_normalisation_is_idempotent(raw: str) -> None:
    once = normalise_text(raw)
    assert normalise_text(once) == once
    assert once == once.strip()
    assert "\r" not in once and "\n\n\n" not in once


def _validate(fields: dict[str, object], mapping: ResolvedMapping = TEXT, **kw: object) -> NormalisedRecord | Problem:
    return validate_fields(fields, mapping, LIMITS, record_index=3, location="line 4", **kw)  # type: ignore[arg-type]


def test_valid_text_record() -> None:
    rec = _validate({"text": "  A perfectly  fine record. ", "source": " docs ", "licence": "MIT"})
    assert isinstance(rec, NormalisedRecord)
    assert (rec.text, rec.source, rec.licence, rec.record_index, rec.location) == (
        "A perfectly fine record.", "docs", "MIT", 3, "line 4")
    assert rec.n_chars == len(rec.text)


def test_prompt_response_record() -> None:
    rec = _validate({"p": "What is  2+2?", "r": "It is four, of course."}, PR)
    assert isinstance(rec, NormalisedRecord)
    assert rec.text == "What is 2+2?\nIt is four, of course."
    assert rec.prompt_chars == len("What is 2+2?")
    assert rec.text[: rec.prompt_chars] == "What is 2+2?"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, ReasonCode.MISSING_FIELD),
        ({"text": None}, ReasonCode.MISSING_FIELD),
        ({"text": 12.5}, ReasonCode.WRONG_TYPE),
        ({"text": ["a list"]}, ReasonCode.WRONG_TYPE),
        ({"text": True}, ReasonCode.WRONG_TYPE),
        ({"text": "\n \t "}, ReasonCode.EMPTY_TEXT),
        ({"text": "too short"}, ReasonCode.TEXT_TOO_SHORT),
        ({"text": "x" * 100_001}, ReasonCode.TEXT_TOO_LONG),
        ({"text": "nul \x00 inside a long enough text"}, ReasonCode.NUL_BYTE),
        ({"text": "escape \x1b[31m inside a long text"}, ReasonCode.CONTROL_CHARACTERS),
        ({"text": "delete \x7f inside a long enough text"}, ReasonCode.CONTROL_CHARACTERS),
        ({"text": "surrogate \udc80 inside a long text"}, ReasonCode.INVALID_UNICODE),
        ({"text": "a fine long enough text", "source": 7}, ReasonCode.WRONG_TYPE),
        ({"text": "a fine long enough text", "licence": "L" * 201}, ReasonCode.METADATA_TOO_LONG),
        ({"text": "a fine long enough text", "source": "bell \x07"}, ReasonCode.CONTROL_CHARACTERS),
    ],
)
def test_record_problems(fields: dict[str, object], code: ReasonCode) -> None:
    result = _validate(fields)
    assert isinstance(result, Problem), result
    assert result.reason is code
    assert result.detail


def test_surrogates_from_undecodable_bytes_are_invalid_utf8() -> None:
    raw = b"caf\xe9 au lait, a long enough text".decode("utf-8", "surrogateescape")
    result = _validate({"text": raw}, surrogate_reason=ReasonCode.INVALID_UTF8)
    assert isinstance(result, Problem) and result.reason is ReasonCode.INVALID_UTF8


def test_tabs_newlines_and_form_feeds_are_not_control_problems() -> None:
    rec = _validate({"text": "col1\tcol2\r\nnext line\x0cnext page"})
    assert isinstance(rec, NormalisedRecord)
    assert rec.text == "col1 col2\nnext line\nnext page"


def test_safe_excerpt_is_storable() -> None:
    out = safe_excerpt("a\x00b\udc80c\x07" + "x" * 500)
    assert "\x00" not in out and "\x07" not in out
    out.encode("utf-8")  # no lone surrogate left
    assert len(out) <= 200 + 20
    assert safe_excerpt(b"bytes \xff\xfe here").startswith("bytes \\xff\\xfe")


def test_every_reason_has_a_fix_hint_and_a_level() -> None:
    assert set(FIX_HINTS) == set(ReasonCode)
    assert set(ReasonCode) == RECORD_LEVEL_REASONS | FILE_LEVEL_REASONS
    assert not RECORD_LEVEL_REASONS & FILE_LEVEL_REASONS


def test_field_mapping_validation() -> None:
    assert FieldMapping().is_auto
    with pytest.raises(ValidationError):
        FieldMapping(text_field="t", prompt_field="p", response_field="r")
    with pytest.raises(ValidationError):
        FieldMapping(prompt_field="p")
    with pytest.raises(ValidationError):
        FieldMapping(prompt_field="x", response_field="x")
    with pytest.raises(ValidationError):
        FieldMapping(text_field="  ")


def test_params_are_frozen_validated_and_hashed() -> None:
    limits = IngestLimits()
    with pytest.raises(ValidationError):
        limits.min_text_chars = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        IngestLimits(min_text_chars=50, max_text_chars=10)
    with pytest.raises(ValidationError):
        DedupParams(num_perm=64, bands=20, rows_per_band=6)  # 120 rows > 64 slots
    assert IngestLimits().sha256() == IngestLimits().sha256()
    assert IngestLimits(batch_size=10).sha256() != IngestLimits().sha256()
    assert DedupParams().sha256() != DedupParams(seed=2).sha256()


def test_params_from_settings() -> None:
    cfg = Settings(max_line_bytes=1234, ingest_batch_size=77, minhash_num_perm=64, near_duplicate_threshold=0.8)
    limits = IngestLimits.from_settings(cfg)
    assert (limits.max_line_bytes, limits.batch_size) == (1234, 77)
    dedup = DedupParams.from_settings(cfg)
    assert dedup.num_perm == 64 and dedup.threshold == 0.8
    assert dedup.bands * dedup.rows_per_band <= 64  # bands shrink to fit fewer permutations


def test_prefetch_yields_everything_in_order_and_reraises() -> None:
    assert list(prefetch(iter(range(100)), depth=2)) == list(range(100))

    def boom():
        yield 1
        raise ValueError("producer failed")

    out = []
    with pytest.raises(ValueError, match="producer failed"):
        for x in prefetch(boom()):
            out.append(x)
    assert out == [1]


def test_prefetch_stops_the_producer_when_the_consumer_stops() -> None:
    produced = []
    done = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                produced.append(i)
                yield i
                i += 1
        finally:
            done.set()

    gen = prefetch(endless(), depth=2)
    assert next(gen) == 0
    gen.close()
    assert done.wait(5)
    assert len(produced) <= 5  # at most depth (+ one in flight) ahead
    assert not any(t.name == "ingest-prefetch" and t.is_alive() for t in threading.enumerate())
