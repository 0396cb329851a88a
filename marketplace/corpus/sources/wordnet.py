"""WordNet 3.0 synsets with their glosses, from Debian's ``wordnet-base`` (``/usr/share/wordnet``).

A line of ``data.POS`` is ``offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt
[pointers...] [frames...] | gloss`` (wndb(5WN)); ``w_cnt`` is two hex digits. Lines that start with
two spaces are the licence header. The gloss is a definition, then optional quoted examples
separated by "; ". One synset is one record:
``dog, domestic dog, Canis familiaris (noun): a member of the genus Canis ...``.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from marketplace.corpus.records import MAX_RECORD_CHARS, MIN_RECORD_CHARS, SourceRecord, clean_paragraph
from marketplace.corpus.sources.base import TextSource

__all__ = ["WordNetSource", "parse_wordnet_line"]

logger = logging.getLogger(__name__)

#: Where Debian's ``wordnet-base`` installs the database files, and which of them hold synsets.
WORDNET_DIR = Path("/usr/share/wordnet")
POS_FILES = (("noun", "data.noun"), ("verb", "data.verb"), ("adjective", "data.adj"), ("adverb", "data.adv"))
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


@dataclass(frozen=True, slots=True)
class WordNetLine:
    """One synset line of a WordNet data file (the unit that :meth:`WordNetSource.records_of` cleans)."""

    pos: str
    line: str


def parse_wordnet_line(line: str) -> tuple[str, list[str], str] | None:
    """``(synset offset, lemmas, gloss)`` of a data-file line, or ``None`` for a header/malformed line."""
    if line.startswith("  ") or " | " not in line:
        return None
    fields, _, gloss = line.partition(" | ")
    tokens = fields.split()
    try:
        n_words = int(tokens[3], 16)
        words = tokens[4 : 4 + 2 * n_words : 2]
    except (IndexError, ValueError):
        return None
    lemmas = list(dict.fromkeys(_ADJ_MARKER.sub("", w).replace("_", " ") for w in words))
    return tokens[0], lemmas, clean_paragraph(gloss)


@dataclass(frozen=True)
class WordNetSource(TextSource):
    """Every synset of the four parts of speech, one record each, in file order."""

    name: str = "wordnet"
    licence: str = "WordNet-3.0"
    package: str | None = "wordnet-base"
    directory: Path = WORDNET_DIR

    def available(self) -> bool:
        return all((self.directory / fname).is_file() for _, fname in POS_FILES)

    def describe(self) -> str:
        return "WordNet 3.0 (Princeton University), synsets and glosses"

    def units(self) -> list[WordNetLine]:
        return _read_lines(self.directory)

    def records_of(self, unit: WordNetLine) -> list[SourceRecord]:
        parsed = parse_wordnet_line(unit.line)
        if parsed is None or not parsed[1] or not parsed[2]:
            return []
        offset, lemmas, gloss = parsed
        text = f"{', '.join(lemmas)} ({unit.pos}): {gloss}"
        if not MIN_RECORD_CHARS <= len(text) <= MAX_RECORD_CHARS:
            return []
        return [SourceRecord(self.name, self.licence, f"{unit.pos}:{offset}", lemmas[0], text)]


@functools.lru_cache(maxsize=2)
def _read_lines(directory: Path) -> list[WordNetLine]:
    units: list[WordNetLine] = []
    for pos, fname in POS_FILES:
        with (directory / fname).open(encoding="utf-8", errors="replace") as fh:
            units.extend(WordNetLine(pos, line.rstrip("\n")) for line in fh if not line.startswith("  "))
    return units
