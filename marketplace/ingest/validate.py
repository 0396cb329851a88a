"""Per-record validation and normalisation: raw fields in, a :class:`NormalisedRecord` or a problem out."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marketplace.ingest.mapping import METADATA_FIELDS, ResolvedMapping
from marketplace.ingest.normalise import content_hash, normalise_text
from marketplace.ingest.params import MAX_METADATA_CHARS, IngestLimits
from marketplace.ingest.reasons import ReasonCode

__all__ = ["NormalisedRecord", "Problem", "safe_excerpt", "validate_fields"]

# C0 controls except \t \n \v \f \r, DEL, C1 controls, and UTF-16 surrogates (never valid in text).
_BAD_CHARS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_EXCERPT_CHARS = 200


@dataclass(frozen=True, slots=True)
class NormalisedRecord:
    """An accepted record. ``text`` is normalised; for prompt/response records it is
    ``prompt + "\\n" + response`` and ``prompt_chars`` is the prompt's length (code points)."""

    record_index: int
    location: str
    text: str
    prompt_chars: int | None
    content_hash: str
    source: str | None
    licence: str | None

    @property
    def n_chars(self) -> int:
        return len(self.text)


@dataclass(frozen=True, slots=True)
class Problem:
    reason: ReasonCode
    detail: str


def safe_excerpt(value: object, limit: int = _EXCERPT_CHARS) -> str:
    """A short, printable, storable excerpt (no NUL, no lone surrogate, controls escaped)."""
    if isinstance(value, bytes | bytearray):
        text = bytes(value[: limit * 4]).decode("utf-8", errors="backslashreplace")
    else:
        text = value if isinstance(value, str) else repr(value)
    text = text[:limit]
    text = _BAD_CHARS.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _check_chars(value: str, field: str, surrogate_reason: ReasonCode) -> Problem | None:
    hit = _BAD_CHARS.search(value)
    if hit is None:
        return None
    ch = hit.group()
    code = ord(ch)
    if code == 0:
        return Problem(ReasonCode.NUL_BYTE, f"field {field!r} contains a NUL character at offset {hit.start()}")
    if 0xD800 <= code <= 0xDFFF:
        what = "bytes that are not UTF-8" if surrogate_reason is ReasonCode.INVALID_UTF8 else "a lone surrogate"
        return Problem(surrogate_reason, f"field {field!r} contains {what} at offset {hit.start()}")
    return Problem(ReasonCode.CONTROL_CHARACTERS,
                   f"field {field!r} contains control character U+{code:04X} at offset {hit.start()}")


def _get_text(fields: Mapping[str, Any], field: str, surrogate_reason: ReasonCode) -> str | Problem:
    if field not in fields:
        present = ", ".join(repr(k) for k in list(fields)[:10]) or "none"
        return Problem(ReasonCode.MISSING_FIELD, f"no field {field!r} (fields: {present})")
    value = fields[field]
    if value is None:
        return Problem(ReasonCode.MISSING_FIELD, f"field {field!r} is null")
    if not isinstance(value, str):
        return Problem(ReasonCode.WRONG_TYPE, f"field {field!r} is {type(value).__name__}, expected a string")
    bad = _check_chars(value, field, surrogate_reason)
    if bad is not None:
        return bad
    return normalise_text(value)


@functools.lru_cache(maxsize=4096)
def _clean_metadata(name: str, value: str, surrogate_reason: ReasonCode) -> str | Problem | None:
    """Metadata values repeat across records (one source, one licence), so results are cached."""
    bad = _check_chars(value, name, surrogate_reason)
    if bad is not None:
        return bad
    value = normalise_text(value)
    if len(value) > MAX_METADATA_CHARS:
        return Problem(ReasonCode.METADATA_TOO_LONG,
                       f"field {name!r} has {len(value)} characters (max {MAX_METADATA_CHARS})")
    return value or None


def _get_metadata(fields: Mapping[str, Any], names: tuple[str, ...],
                  surrogate_reason: ReasonCode) -> str | Problem | None:
    for name in names:
        value = fields.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            return Problem(ReasonCode.WRONG_TYPE, f"field {name!r} is {type(value).__name__}, expected a string")
        if len(value) > 4 * MAX_METADATA_CHARS:  # don't fill the cache with long values
            return Problem(ReasonCode.METADATA_TOO_LONG,
                           f"field {name!r} has {len(value)} characters (max {MAX_METADATA_CHARS})")
        return _clean_metadata(name, value, surrogate_reason)
    return None


def validate_fields(
    fields: Mapping[str, Any],
    mapping: ResolvedMapping,
    limits: IngestLimits,
    *,
    record_index: int,
    location: str,
    surrogate_reason: ReasonCode = ReasonCode.INVALID_UNICODE,
) -> NormalisedRecord | Problem:
    """Check one record's mapped fields and metadata; normalise and hash its text.

    ``surrogate_reason``: readers that decode bytes with ``surrogateescape`` (CSV) pass
    ``INVALID_UTF8`` so undecodable bytes are reported as such; JSON's ``"\\ud800"`` escapes are
    ``INVALID_UNICODE``.
    """
    prompt_chars: int | None = None
    if mapping.text_field is not None:
        text = _get_text(fields, mapping.text_field, surrogate_reason)
        if isinstance(text, Problem):
            return text
        if not text:
            return Problem(ReasonCode.EMPTY_TEXT, f"field {mapping.text_field!r} is empty or only whitespace")
    else:
        assert mapping.prompt_field is not None and mapping.response_field is not None
        prompt = _get_text(fields, mapping.prompt_field, surrogate_reason)
        if isinstance(prompt, Problem):
            return prompt
        response = _get_text(fields, mapping.response_field, surrogate_reason)
        if isinstance(response, Problem):
            return response
        for name, part in ((mapping.prompt_field, prompt), (mapping.response_field, response)):
            if not part:
                return Problem(ReasonCode.EMPTY_TEXT, f"field {name!r} is empty or only whitespace")
        text = prompt + "\n" + response
        prompt_chars = len(prompt)
    n = len(text)
    if n < limits.min_text_chars:
        return Problem(ReasonCode.TEXT_TOO_SHORT, f"{n} characters after normalisation (min {limits.min_text_chars})")
    if n > limits.max_text_chars:
        return Problem(ReasonCode.TEXT_TOO_LONG, f"{n} characters after normalisation (max {limits.max_text_chars})")
    meta: dict[str, str | None] = {}
    for key, names in METADATA_FIELDS.items():
        value = _get_metadata(fields, names, surrogate_reason)
        if isinstance(value, Problem):
            return value
        meta[key] = value
    return NormalisedRecord(
        record_index=record_index,
        location=location,
        text=text,
        prompt_chars=prompt_chars,
        content_hash=content_hash(text),
        source=meta["source"],
        licence=meta["licence"],
    )
