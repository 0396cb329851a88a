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
_OTHER_WS = re.compile(r"[^\S \n]")  # whitespace other than space and newline: tab, NBSP, \r...
_BLANK_LINES = re.compile(r"\n{3,}")


def _needs_whitespace_work(text: str, ascii_only: bool) -> bool:
    if "  " in text or " \n" in text or "\n\n\n" in text:
        return True
    if ascii_only:  # substring tests are memchr-fast; the other ASCII whitespace is \t \r \v \f (\x1c-\x1f
        # are control characters, refused before normalisation)
        return "\t" in text or "\r" in text or "\v" in text or "\f" in text
    return _OTHER_WS.search(text) is not None


def normalise_text(text: str) -> str:
    """The normal form described in the module docstring."""
    ascii_only = text.isascii()
    if not ascii_only:
        text = unicodedata.normalize("NFC", text)
    if not _needs_whitespace_work(text, ascii_only):  # the common case: one scan, no copy
        return text.strip()
    text = _LINE_BREAKS.sub("\n", text)
    lines = []
    for line in text.split("\n"):
        body = line.lstrip()
        if body:
            lines.append(line[: len(line) - len(body)] + " ".join(body.split()))
        else:
            lines.append("")
    text = "\n".join(lines)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def content_hash(text: str) -> str:
    """sha256 hex digest of the UTF-8 bytes of an already normalised text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
