"""Dictionaries in the dictd format (FOLDOC, the Jargon File, GCIDE), as Debian installs them.

A dictd dictionary is two files under ``/usr/share/dictd``: ``NAME.dict.dz`` (dictzip, i.e. gzip
with a random-access table in the header; plain gzip readers read it whole) and ``NAME.index``, one
line per headword: ``headword<TAB>offset<TAB>length``, offset and length in bytes of the
*uncompressed* data, written in dictd's base64 (``A-Za-z0-9+/``, most significant digit first, no
padding). Several headwords may point at the same entry (synonyms); we keep one record per entry.

The sources are kept disjoint in content so that the only cross-provider duplicates in a built
corpus are the ones a provider makes on purpose: FOLDOC entries copied from the Jargon File (tagged
``[{Jargon File}]``, or untagged but filed under a Jargon headword with mostly the same words, see
``DictdSource.defer_to``) and GCIDE entries with senses from WordNet (tagged ``[WordNet 1.5]``) are
skipped, since the Jargon File and WordNet are sources of their own.
"""

from __future__ import annotations

import functools
import gzip
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from marketplace.corpus.records import SourceRecord, chunk_paragraphs, clean_paragraph, split_paragraphs
from marketplace.corpus.sources.base import TextSource
from marketplace.ingest.minhash import tokenize

__all__ = ["DictdEntry", "DictdSource", "decode_dictd_number", "read_dictd", "read_dictd_index"]

logger = logging.getLogger(__name__)

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}

# FOLDOC: "<programming, humour> " category tags; "(2014-11-27)" last-edit stamps.
_CATEGORY_TAG = re.compile(r"^<[^<>]{1,80}>\s*")
_DATE_STAMP = re.compile(r"^\(\d{4}-\d{2}-\d{2}\)$")
# GCIDE: "\Lap"i*date\" pronunciations and "[1913 Webster]"-style provenance tags.
_PRONUNCIATION = re.compile(r"\\[^\\\n]{0,80}\\")
_PROVENANCE = re.compile(
    r"\[(?:\d{4} )?(?:Webster|WordNet[^\]]*|PJC|Century Dict\.|Chambers 1728|Stormonth|Craig\.|"
    r"Elliott|Latham|Nares|Johnson|Brande & C\.|Ure|Wright|Knight|Goodrich|Rees|Mahn|Hallam)\]"
)
# GCIDE spells accented letters in ASCII: "lat['e]ral" is latéral, "[=a]" a macron, "[i^]" a breve.
_GCIDE_ACCENT = re.compile(r"\[([`'^~\"=.,*-])([A-Za-z])([A-Za-z]?)\]")
_GCIDE_BREVE = re.compile(r"\[([A-Za-z])([A-Za-z]?)\^\]")
_COMBINING = {"'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", '"': "\u0308", "=": "\u0304",
              "-": "\u0304", ".": "\u0323", ",": "\u0327", "*": "\u0307"}  # fmt: skip
# Jargon File: an entry without a pronunciation has an empty "//" before its part of speech.
_EMPTY_PRONUNCIATION = re.compile(r" //(?=,|$)")
_XREF_BRACES = re.compile(r"[{}]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:])")


def decode_dictd_number(text: str) -> int:
    """Decode a dictd base64 number (``"BVes"`` -> 1_400_620). Raises ``ValueError`` on a bad digit."""
    value = 0
    for char in text:
        try:
            value = value * 64 + _B64_VALUE[char]
        except KeyError:
            raise ValueError(f"{char!r} is not a dictd base64 digit in {text!r}") from None
    return value


@dataclass(frozen=True, slots=True)
class DictdEntry:
    """One entry of a dictd dictionary: its headwords (first one first) and its byte range in the data."""

    headwords: tuple[str, ...]
    offset: int
    length: int

    @property
    def headword(self) -> str:
        return self.headwords[0]


def read_dictd_index(index_path: Path) -> list[DictdEntry]:
    """Entries in data order, one per distinct byte range; dictd's own ``00-database-*`` entries dropped."""
    spans: dict[tuple[int, int], list[str]] = {}
    with index_path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[0].startswith(("00-database", "00database")):
                continue
            try:
                span = (decode_dictd_number(parts[1]), decode_dictd_number(parts[2]))
            except ValueError:
                logger.debug("skipping malformed index line in %s: %r", index_path, line)
                continue
            spans.setdefault(span, []).append(parts[0])
    return [DictdEntry(tuple(words), *span) for span, words in sorted(spans.items())]


def read_dictd(stem: Path) -> tuple[list[DictdEntry], bytes]:
    """Index entries and the whole uncompressed data of ``STEM.index`` / ``STEM.dict.dz`` (or ``.dict``)."""
    index_path = stem.with_name(stem.name + ".index")
    data_path = stem.with_name(stem.name + ".dict.dz")
    if data_path.exists():
        with gzip.open(data_path, "rb") as fh:
            data = fh.read()
    else:
        data = stem.with_name(stem.name + ".dict").read_bytes()
    return read_dictd_index(index_path), data


def _split_header(raw: str) -> tuple[list[str], str]:
    """Headword lines (up to the first blank line) and the body of a FOLDOC / Jargon entry."""
    head, _, body = raw.strip("\n").partition("\n\n")
    return [line.strip() for line in head.splitlines() if line.strip()], body


# Each cleaner returns (title, header line to print above the body or "", body paragraphs).
Cleaned = tuple[str, str, list[str]]


def _clean_foldoc(raw: str, headword: str) -> Cleaned | None:
    if "[{Jargon File}]" in raw:  # taken from the Jargon File, which is a source of its own
        return None
    header, body = _split_header(raw)
    paragraphs = [p for p in split_paragraphs(_XREF_BRACES.sub("", body)) if not _DATE_STAMP.match(p)]
    if not header or not paragraphs:
        return None
    paragraphs[0] = _CATEGORY_TAG.sub("", paragraphs[0])
    return header[0], ", ".join(dict.fromkeys(header)), [p for p in paragraphs if p]


def _clean_jargon(raw: str, headword: str) -> Cleaned | None:
    # Header: the headword, then a grammar line such as "/dev·nuhl/, n." (kept: it is the entry's).
    header, body = _split_header(raw)
    paragraphs = split_paragraphs(_XREF_BRACES.sub("", body))
    if not header or not paragraphs:
        return None
    return header[0], _EMPTY_PRONUNCIATION.sub("", " ".join(header)), paragraphs


def _clean_gcide(raw: str, headword: str) -> Cleaned | None:
    if "[WordNet" in raw:  # senses taken from WordNet, which is a source of its own
        return None
    # The headword starts the first paragraph ("Lapidate, v. t. [L. lapidatus...] To stone.").
    text = _XREF_BRACES.sub("", _PRONUNCIATION.sub("", _PROVENANCE.sub("", raw)))
    text = _GCIDE_ACCENT.sub(lambda m: m[2] + _COMBINING[m[1]] + m[3], text)
    text = _GCIDE_BREVE.sub(lambda m: m[1] + "\u0306" + m[2], text)
    paragraphs = [_SPACE_BEFORE_PUNCT.sub(r"\1", p) for p in split_paragraphs(text)]
    paragraphs = [p for p in paragraphs if len(p) > 1]
    return (headword, "", paragraphs) if paragraphs else None


_CLEANERS = {"foldoc": _clean_foldoc, "jargon": _clean_jargon, "gcide": _clean_gcide}


@dataclass(frozen=True)
class DictdSource(TextSource):
    """FOLDOC, the Jargon File or GCIDE from ``/usr/share/dictd``. ``name`` picks the files and the
    cleaner, so it has no default: neither have ``licence`` and ``package``, which go with it (see
    :func:`marketplace.corpus.catalog.default_sources`)."""

    directory: Path = Path("/usr/share/dictd")
    #: Another dictionary in ``directory`` that owns shared entries: an entry is skipped when that one
    #: has an entry under one of its headwords with mostly the same words (FOLDOC copied many
    #: Jargon File entries without tagging them).
    defer_to: str | None = None

    @property
    def stem(self) -> Path:
        return self.directory / self.name

    def available(self) -> bool:
        index = self.stem.with_name(self.name + ".index")
        data = [self.stem.with_name(self.name + ext) for ext in (".dict.dz", ".dict")]
        return index.is_file() and any(p.is_file() for p in data)

    def describe(self) -> str:
        """The dictionary's own ``00-database-short`` line, e.g. "The Jargon File (version 4.4.7, ...)"."""
        return _describe(self.stem) if self.available() else self.name

    def units(self) -> list[DictdEntry]:
        return _read_cached(self.stem)[0]

    def records_of(self, unit: DictdEntry) -> list[SourceRecord]:
        data = _read_cached(self.stem)[1]
        raw = data[unit.offset : unit.offset + unit.length].decode("utf-8", errors="replace")
        if "\ufffd" in raw:
            return []
        cleaned = _CLEANERS[self.name](raw, unit.headword)
        if cleaned is None:
            return []
        title, header, paragraphs = cleaned
        if header:
            paragraphs = [header, *paragraphs]
        if self.defer_to is not None and self._copied_from(self.defer_to, unit, paragraphs):
            return []
        records = []
        for i, chunk in enumerate(chunk_paragraphs(paragraphs)):
            key = f"{unit.headword}@{unit.offset}" + (f"#{i}" if i else "")
            records.append(SourceRecord(self.name, self.licence, key, title, chunk))
        return records

    def _copied_from(self, other_name: str, unit: DictdEntry, paragraphs: list[str]) -> bool:
        other = DictdSource(name=other_name, licence="", package=None, directory=self.directory)
        if not other.available():
            return False
        owned = _entry_words_by_headword(other)
        words = _words("\n".join(paragraphs))
        for headword in unit.headwords:
            for other_words in owned.get(headword.casefold(), ()):
                if len(words & other_words) >= DEFER_JACCARD * len(words | other_words):
                    return True
        return False


#: Word-set Jaccard index above which two entries under the same headword are the same text.
DEFER_JACCARD = 0.5


def _words(text: str) -> frozenset[str]:
    """The word set the near-duplicate measures compare (the ingest's tokens)."""
    return frozenset(tokenize(text))


@functools.lru_cache(maxsize=4)
def _entry_words_by_headword(source: DictdSource) -> dict[str, list[frozenset[str]]]:
    """casefolded headword -> word sets of the entries filed under it, for every entry of ``source``."""
    out: dict[str, list[frozenset[str]]] = {}
    for unit in source.units():
        words = _words("\n".join(r.text for r in source.records_of(unit)))
        for headword in unit.headwords:
            out.setdefault(headword.casefold(), []).append(words)
    return out


@functools.lru_cache(maxsize=4)
def _read_cached(stem: Path) -> tuple[list[DictdEntry], bytes]:
    entries, data = read_dictd(stem)
    logger.debug("%s: %d entries, %d bytes uncompressed", stem, len(entries), len(data))
    return entries, data


@functools.lru_cache(maxsize=8)
def _describe(stem: Path) -> str:
    entries_path = stem.with_name(stem.name + ".index")
    with entries_path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3 and parts[0] in ("00-database-short", "00databaseshort"):
                start, length = decode_dictd_number(parts[1]), decode_dictd_number(parts[2])
                # The header entries sit at the start of the data: read only that far.
                packed = stem.with_name(stem.name + ".dict.dz")
                opener = gzip.open if packed.exists() else open
                with opener(packed if packed.exists() else stem.with_name(stem.name + ".dict"), "rb") as data:
                    head = data.read(start + length)[start:]
                lines = head.decode("utf-8", errors="replace").splitlines()
                body = [clean_paragraph(x) for x in lines[1:] if x.strip()]
                return body[0] if body else stem.name
    return stem.name
