"""Text normalisation and the content hash (the identity used for exact duplicates).

Normal form (decided here, the issue says "NFC, whitespace"):

1. Unicode NFC;
2. line breaks unified to ``\\n`` (``\\r\\n``, ``\\r``, ``\\v``, ``\\f``, U+2028, U+2029);
3. inside a line, every run of horizontal whitespace after a non-space character becomes one space
   (tabs and no-break spaces included); *leading* indentation is kept, because it carries meaning in
   code and lists;
4. trailing whitespace of every line is removed, more than one blank line becomes one blank line,
   and the whole text is stripped.

So ``"a  b"`` and ``"a\\tb "`` hash alike, while ``"a\\nb"`` and ``"a b"`` do not (near-duplicate
detection, which ignores all whitespace and case, links those). Lengths are in code points.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["NORMALISATION_VERSION", "content_hash", "normalise_text"]

# Bump when the normal form changes: it is part of every submission's params hash.
NORMALISATION_VERSION = 1

_LINE_BREAKS = re.compile(r"\r\n?|[\v\f\u2028\u2029]")
_INNER_WS = re.compile(r"(?<=\S)(?:[^\S\n]{2,}|[^\S\n ])")
_TRAILING_WS = re.compile(r"[^\S\n]+(?=\n|\Z)")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalise_text(text: str) -> str:
    """The normal form described in the module docstring."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAKS.sub("\n", text)
    text = _INNER_WS.sub(" ", text)
    text = _TRAILING_WS.sub("", text)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def content_hash(text: str) -> str:
    """sha256 hex digest of the UTF-8 bytes of an already normalised text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
