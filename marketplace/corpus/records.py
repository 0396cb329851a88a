"""The record every source yields, and the text clean-up shared by the sources.

A :class:`SourceRecord` is one cleaned entry of one real text source (a dictionary entry, a
docstring, a paragraph group of the Python reference, a fortune). Lengths are in characters
(Unicode code points) throughout.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "MAX_RECORD_CHARS",
    "MIN_RECORD_CHARS",
    "SourceRecord",
    "chunk_paragraphs",
    "clean_block",
    "clean_paragraph",
    "split_paragraphs",
]

#: Records shorter than this are dropped (too little text to be a training sample).
MIN_RECORD_CHARS = 80
#: Records longer than this are split on paragraph boundaries.
MAX_RECORD_CHARS = 2000

_WS = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n")
# C0/C1 control characters other than newline and tab: never part of clean text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One cleaned entry of a real source.

    ``key`` is stable and unique within the source (headword, qualified name, topic#chunk);
    ``title`` is the human name of the entry (headword, ``module.function``, topic), used for
    prompt/response records ("What does the term TITLE mean?").
    """

    source: str
    licence: str
    key: str
    title: str
    text: str


def clean_paragraph(text: str) -> str:
    """NFC, control characters removed, all runs of whitespace (newlines included) to one space."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    return " ".join(text.split())


def clean_block(text: str) -> str:
    """NFC, control characters removed, tabs expanded, common indentation and trailing spaces cut.

    For text whose layout carries meaning (code examples in the Python documentation, poems):
    line breaks and relative indentation are kept.
    """
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text)).expandtabs(8)
    lines = [line.rstrip() for line in textwrap.dedent(text).splitlines()]
    return "\n".join(lines).strip("\n")


def split_paragraphs(text: str, *, keep_lines: bool = False) -> list[str]:
    """Blank-line separated paragraphs; empty ones dropped.

    By default each paragraph is reflowed to one line (dictionary entries are hard-wrapped at ~70
    columns, which is layout, not content); with ``keep_lines`` line breaks and indentation stay.
    """
    out = []
    for block in _BLANK_LINES.split(text):
        para = clean_block(block) if keep_lines else clean_paragraph(block)
        if para.strip():
            out.append(para)
    return out


def chunk_paragraphs(
    paragraphs: list[str], *, min_chars: int = MIN_RECORD_CHARS, max_chars: int = MAX_RECORD_CHARS
) -> Iterator[str]:
    """Greedily join consecutive paragraphs (blank line between) into chunks of at most ``max_chars``.

    A chunk is closed when adding the next paragraph would pass ``max_chars``; a single paragraph
    longer than ``max_chars`` is cut at the last sentence end (". ") before the limit, or at a space.
    Chunks shorter than ``min_chars`` are dropped (a trailing short paragraph is merged into the
    previous chunk when it fits).
    """
    pieces: list[str] = []
    for para in paragraphs:
        while len(para) > max_chars:
            cut = para.rfind(". ", 0, max_chars)
            cut = cut + 1 if cut >= max_chars // 2 else para.rfind(" ", 0, max_chars)
            if cut <= 0:
                cut = max_chars
            pieces.append(para[:cut].strip())
            para = para[cut:].strip()
        if para:
            pieces.append(para)

    current: list[str] = []
    size = 0
    chunks: list[str] = []
    for piece in pieces:
        extra = len(piece) + (2 if current else 0)
        if current and size + extra > max_chars:
            chunks.append("\n\n".join(current))
            current, size = [], 0
            extra = len(piece)
        current.append(piece)
        size += extra
    if current:
        tail = "\n\n".join(current)
        if len(tail) < min_chars and chunks and len(chunks[-1]) + 2 + len(tail) <= max_chars:
            chunks[-1] = chunks[-1] + "\n\n" + tail
        else:
            chunks.append(tail)
    yield from (c for c in chunks if len(c) >= min_chars)
