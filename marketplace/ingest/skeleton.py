"""The matching form of a text: what duplicate detection compares, never what is stored.

Disguised copies (zero-width characters inside words, Cyrillic or Greek look-alike letters, fullwidth
forms, stray combining marks) must match their original, yet the catalog keeps every text as given. So
near-duplicate matching (:mod:`marketplace.ingest.minhash`, whose word tokens are taken from this form)
reads :func:`match_skeleton`, in the spirit of the Unicode TR39 skeleton:

1. NFKD: compatibility decomposition (fullwidth ``Ａ`` -> ``A``, ligatures, mathematical letters), which
   also separates combining marks from their base letters;
2. every format character (category Cf: zero-width space and joiners, soft hyphen, bidi controls, word
   joiner, BOM) and every combining mark (Mn, Me: accents, overlays, variation selectors) is removed;
3. :data:`CONFUSABLES` maps Cyrillic, Greek and Armenian look-alikes of Latin letters and digits to them,
   case by case (before case folding: Greek capital ``Ν`` looks like ``N``, its small ``ν`` like ``v``);
4. case folding.

ASCII text skips all of it (its form is just lower case), so the common case costs nothing. The table
is compact on purpose (the scripts seen in disguised copies); the full TR39 data is not shipped. ASCII
letters and digits are never conflated with each other (``0``/``O``, ``1``/``l``): that would link
unrelated numbers. Changing this form changes which texts match: bump :data:`MATCHING_VERSION`.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

__all__ = ["CONFUSABLES", "MATCHING_VERSION", "match_skeleton"]

MATCHING_VERSION = 1

# Look-alike -> the Latin letter or digit it imitates (both cases where both look alike).
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "А": "A", "а": "a", "В": "B", "в": "b", "Е": "E", "е": "e", "К": "K", "к": "k", "М": "M", "м": "m",
    "Н": "H", "н": "h", "О": "O", "о": "o", "Р": "P", "р": "p", "С": "C", "с": "c", "Т": "T", "т": "t",
    "У": "Y", "у": "y", "Х": "X", "х": "x", "Ѕ": "S", "ѕ": "s", "І": "I", "і": "i", "Ј": "J", "ј": "j",
    "Ԁ": "D", "ԁ": "d", "Ԛ": "Q", "ԛ": "q", "Ԝ": "W", "ԝ": "w", "Һ": "H", "һ": "h", "Ӏ": "I", "ӏ": "l",
    "Ү": "Y", "ү": "y", "Ь": "b", "ь": "b", "г": "r", "п": "n", "З": "3", "з": "3", "б": "6", "Ꙅ": "S",
    "Ԍ": "G", "ԍ": "g", "Ꮃ": "W",
    # Greek
    "Α": "A", "α": "a", "Β": "B", "Ε": "E", "ε": "e", "Ζ": "Z", "Η": "H", "Ι": "I", "ι": "i", "Κ": "K",
    "κ": "k", "Μ": "M", "Ν": "N", "ν": "v", "Ο": "O", "ο": "o", "Ρ": "P", "ρ": "p", "Τ": "T", "Υ": "Y",
    "υ": "u", "Χ": "X", "χ": "x", "γ": "y", "Ϲ": "C", "ϲ": "c", "ϳ": "j", "Ϳ": "J",
    # Armenian
    "օ": "o", "Օ": "O", "ս": "u", "Ս": "U", "հ": "h", "ո": "n", "ց": "g", "զ": "q",
    # Latin look-alikes outside ASCII that NFKD keeps
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ʏ": "y", "ᴀ": "a", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e",
    "ᴊ": "j", "ᴋ": "k", "ᴍ": "m", "ᴏ": "o", "ᴘ": "p", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z",
    "ʀ": "r", "ʙ": "b", "ʜ": "h", "ɪ": "i", "ʟ": "l", "ɴ": "n", "ꜱ": "s", "ɢ": "g",
}


@functools.cache
def _table() -> dict[int, str | None]:
    """str.translate table: format characters and combining marks deleted, confusables mapped.

    Built once per process on the first non-ASCII text (one pass over the code points, ~0.3 s)."""
    table: dict[int, str | None] = {}
    for cp in range(0x80, sys.maxunicode + 1):
        if unicodedata.category(chr(cp)) in ("Cf", "Mn", "Me"):
            table[cp] = None
    table.update({ord(k): v for k, v in CONFUSABLES.items()})
    return table


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


def match_skeleton(text: str) -> str:
    """The matching form of ``text`` (see the module docstring); ASCII text is only lower-cased.

    The table maps no ASCII character, so only the non-ASCII runs go through ``str.translate``: with a
    dict table it looks every character up one by one once it has met a non-ASCII one (~80 µs for a
    500-character text with one accent, ~25 µs this way; the same result).
    """
    if text.isascii():
        return text.lower()
    table = _table()
    decomposed = unicodedata.normalize("NFKD", text)
    return _NON_ASCII_RUN.sub(lambda run: run.group().translate(table), decomposed).casefold()
