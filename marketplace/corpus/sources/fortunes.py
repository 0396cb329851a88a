"""BSD fortune cookies from Debian's ``fortunes`` / ``fortunes-min`` (``/usr/share/games/fortunes``).

The source reads the files those two packages install, by name (:data:`FORTUNE_FILES`), and nothing
else in the folder: installing another fortune package (``fortunes-debian-hints``...) must not change
the text a corpus or the demo model is built from. A listed file that is absent is reported with the
package that installs it (:meth:`FortunesSource.missing`).

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
#: The fortune files read, by the Debian package that installs them (:data:`EXCLUDED_FORTUNE_FILES` left out).
FORTUNE_FILES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fortunes-min", ("fortunes", "literature", "riddles")),
    ("fortunes", ("art", "computers", "cookie", "debian", "definitions", "disclaimer", "drugs", "education",
                  "food", "goedel", "humorists", "kids", "knghtbrd", "law", "linux", "linuxcookie", "love",
                  "magic", "medicine", "miscellaneous", "news", "paradoxum", "people", "perl", "pets",
                  "platitudes", "politics", "pratchett", "science", "songs-poems", "sports", "startrek", "tao",
                  "translate-me", "wisdom", "work", "zippy")),
)
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
    """The quotations of the listed fortune files (``files_by_package``, default :data:`FORTUNE_FILES`)
    that are present with their ``.dat`` table, one record each; other files in ``directory`` are ignored."""

    name: str = "fortunes"
    licence: str = "BSD-3-Clause (fortune-mod; quotations vary, see /usr/share/doc/fortunes/copyright)"
    package: str | None = "fortunes"
    directory: Path = Path("/usr/share/games/fortunes")
    files_by_package: tuple[tuple[str, tuple[str, ...]], ...] = FORTUNE_FILES

    def _present(self, name: str) -> bool:
        path = self.directory / name
        return path.is_file() and not path.is_symlink() and path.with_name(name + ".dat").is_file()

    def files(self) -> list[Path]:
        """The listed fortune files that are present (with a ``.dat`` table), sorted by name."""
        names = {n for _, listed in self.files_by_package for n in listed if n not in EXCLUDED_FORTUNE_FILES}
        return [self.directory / n for n in sorted(names) if self._present(n)]

    def available(self) -> bool:
        return bool(self.files())

    def missing(self) -> list[str]:
        """The packages some of whose listed files are absent."""
        return [pkg for pkg, listed in self.files_by_package if not all(self._present(n) for n in listed)]

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
