"""What a text source is: a name, a licence, the Debian package it comes from, and its records.

A source is read in two steps so that a build that needs a few thousand records of a large
dictionary (GCIDE has ~125k entries) cleans only those: :meth:`TextSource.units` lists the raw
entries cheaply, in a fixed order, and :meth:`TextSource.records_of` cleans one of them into zero
or more records. :meth:`TextSource.load` does both for every unit.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from marketplace.corpus.records import SourceRecord

__all__ = ["TextSource"]


@dataclass(frozen=True)
class TextSource(abc.ABC):
    """A real, offline text source.

    Subclasses are frozen dataclasses whose fields say where the data lives (tests point a source
    at a missing folder to exercise the "package not installed" path). Everything is
    deterministic: same files, same Python, same units and records in the same order.
    """

    #: Short stable name stamped on every record (``foldoc``, ``python-docs/topics``...).
    name: str
    #: SPDX-like licence identifier of the text (what the package's copyright file says).
    licence: str
    #: Debian package that ships the data; ``None`` for sources that come with Python itself.
    package: str | None

    @abc.abstractmethod
    def available(self) -> bool:
        """True when the data files are present and readable on this machine."""

    @abc.abstractmethod
    def units(self) -> Sequence[Any]:
        """The raw entries, cheaply, in a fixed order. Only call when :meth:`available`."""

    @abc.abstractmethod
    def records_of(self, unit: Any) -> list[SourceRecord]:
        """Clean one raw entry into records (none when it is unusable, several when it is long)."""

    def missing(self) -> list[str]:
        """The Debian packages to install for this source's data to be complete ([] when it is)."""
        return [self.package] if self.package and not self.available() else []

    def load(self) -> list[SourceRecord]:
        """Every clean record of the source, in a fixed order."""
        return [record for unit in self.units() for record in self.records_of(unit)]

    def describe(self) -> str:
        """One line saying what the source is (edition/version where the data states it)."""
        return self.name
