"""BSD fortune cookies from Debian's ``fortunes`` / ``fortunes-min`` (``/usr/share/games/fortunes``).

Each fortune file is plain text, one quotation after another, separated by lines holding a single
``%``; the ``.dat`` beside it is the random-access table that ``fortune`` uses (we only use it to
recognise fortune files). Line breaks are kept: they are part of poems, dialogues and attributions.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from marketplace.corpus.records import MAX_RECORD_CHARS, MIN_RECORD_CHARS, SourceRecord, clean_block
from marketplace.corpus.sources.base import TextSource

__all__ = ["EXCLUDED_FORTUNE_FILES", "FortunesSource", "split_fortunes"]

logger = logging.getLogger(__name__)

#: Not used: drawings rather than prose (ascii-art), and two collections of jokes about groups of
#: people that we would not want a demo to pay for or a model to learn from.
EXCLUDED_FORTUNE_FILES = frozenset({"ascii-art", "ethnic", "men-women"})
_SEPARATOR = re.compile(r"^%\s*$", re.MULTILINE)


def split_fortunes(text: str) -> list[str]:
    """The quotations of one fortune file, each cleaned (layout kept), empty ones dropped."""
    return [q for q in (clean_block(part) for part in _SEPARATOR.split(text)) if q.strip()]


@dataclass(frozen=True, slots=True)
class Fortune:
    category: str
    index: int
    text: str


@dataclass(frozen=True)
class FortunesSource(TextSource):
    """The quotations of every fortune file with a ``.dat`` table (except :data:`EXCLUDED_FORTUNE_FILES`),
    one record each."""

    name: str = "fortunes"
    licence: str = "BSD-3-Clause (fortune-mod; quotations vary, see /usr/share/doc/fortunes/copyright)"
    package: str | None = "fortunes"
    directory: Path = Path("/usr/share/games/fortunes")

    def files(self) -> list[Path]:
        """Fortune files (those with a ``.dat`` table), sorted by name, exclusions removed."""
        if not self.directory.is_dir():
            return []
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.is_file() and not p.is_symlink() and not p.suffix
            and p.with_name(p.name + ".dat").is_file() and p.name not in EXCLUDED_FORTUNE_FILES
        )

    def available(self) -> bool:
        return bool(self.files())

    def describe(self) -> str:
        return f"BSD fortune files ({len(self.files())} categories)"

    def units(self) -> list[Fortune]:
        return _read_fortunes(tuple(self.files()))

    def records_of(self, unit: Fortune) -> list[SourceRecord]:
        if not MIN_RECORD_CHARS <= len(unit.text) <= MAX_RECORD_CHARS:
            return []
        return [SourceRecord(self.name, self.licence, f"{unit.category}#{unit.index}", unit.category, unit.text)]


@functools.lru_cache(maxsize=2)
def _read_fortunes(paths: tuple[Path, ...]) -> list[Fortune]:
    units: list[Fortune] = []
    for path in paths:
        text = path.read_bytes().decode("utf-8", errors="replace")
        units.extend(Fortune(path.name, i, q) for i, q in enumerate(split_fortunes(text)) if "\ufffd" not in q)
    return units
