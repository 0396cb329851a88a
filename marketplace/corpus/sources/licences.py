"""Software licence texts from Debian's ``base-files`` (``/usr/share/common-licenses``): fluent legal prose.

The demo uses them as a bulk provider of well-formed English that has nothing to do with the target
task (Python documentation): the kind of data a valuation must not pay for just because it is clean
text. ``base-files`` is an essential Debian package, so the texts are on every Debian machine; the
source reads the files in :data:`LICENCE_FILES` by name, never the folder's other contents, so that
what a build reads does not depend on what else is installed.

A record is a run of consecutive sentences of one paragraph, at most :data:`WINDOW_CHARS` characters:
licences are long, and a provider of bulk text ships many short passages rather than a few whole
documents. The texts repeat each other (GPL-2 and LGPL-2 share whole paragraphs); the corpus build's
near-duplicate filter keeps the first copy only.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from marketplace.corpus.records import MIN_RECORD_CHARS, SourceRecord, split_paragraphs
from marketplace.corpus.sources.base import TextSource

__all__ = ["LICENCE_FILES", "LicencesSource", "sentence_windows"]

#: The licence files read, in this order (symlinks such as ``GPL`` -> ``GPL-3`` are not listed).
LICENCE_FILES = (
    "Apache-2.0",
    "Artistic",
    "BSD",
    "CC0-1.0",
    "GFDL-1.2",
    "GFDL-1.3",
    "GPL-1",
    "GPL-2",
    "GPL-3",
    "LGPL-2",
    "LGPL-2.1",
    "LGPL-3",
    "MPL-1.1",
    "MPL-2.0",
)
#: Longest record: sentences are joined until the next one would pass this many characters.
WINDOW_CHARS = 400
_SENTENCE_END = re.compile(r"(?<=[.;:!?])\s+(?=[A-Z0-9(\"'])")


def sentence_windows(paragraph: str, max_chars: int = WINDOW_CHARS) -> list[str]:
    """Consecutive sentences of ``paragraph`` joined into windows of at most ``max_chars`` characters (a
    longer sentence is a window of its own); windows shorter than MIN_RECORD_CHARS are dropped."""
    windows: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        if current and len(current) + 1 + len(sentence) > max_chars:
            windows.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}" if current else sentence
    if current:
        windows.append(current)
    return [w for w in windows if len(w) >= MIN_RECORD_CHARS]


@dataclass(frozen=True, slots=True)
class Passage:
    licence_file: str
    index: int
    text: str


@dataclass(frozen=True)
class LicencesSource(TextSource):
    """Sentence windows of the licence texts in ``directory`` (the files of :data:`LICENCE_FILES` present)."""

    name: str = "licences"
    licence: str = "verbatim copying permitted (each licence's own terms; /usr/share/doc/base-files/copyright)"
    package: str | None = "base-files"
    directory: Path = Path("/usr/share/common-licenses")

    def files(self) -> list[Path]:
        return [
            self.directory / n
            for n in LICENCE_FILES
            if (self.directory / n).is_file() and not (self.directory / n).is_symlink()
        ]

    def available(self) -> bool:
        return bool(self.files())

    def missing(self) -> list[str]:
        return [] if len(self.files()) == len(LICENCE_FILES) else [str(self.package)]

    def describe(self) -> str:
        return f"software licence texts ({len(self.files())} files)"

    def units(self) -> list[Passage]:
        return _read_passages(tuple(self.files()))

    def records_of(self, unit: Passage) -> list[SourceRecord]:
        return [
            SourceRecord(self.name, self.licence, f"{unit.licence_file}#{unit.index}", unit.licence_file, unit.text)
        ]


@functools.lru_cache(maxsize=2)
def _read_passages(paths: tuple[Path, ...]) -> list[Passage]:
    units: list[Passage] = []
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        windows = [w for para in split_paragraphs(text) for w in sentence_windows(para)]
        units.extend(Passage(path.name, i, w) for i, w in enumerate(windows) if "\ufffd" not in w)
    return units
