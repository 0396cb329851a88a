"""Draw records from sources without replacement, in a seeded order, cleaning only what is drawn.

Every provider file of a build draws from the same :class:`SourcePool` of a source, so providers
never share a record. A :class:`RecordFilter` shared by all pools drops records whose text was
already drawn (exact duplicates across or within sources, case and whitespace ignored), records
that share text with the held-out target slice and, when asked, near-duplicates of a record drawn
before (see :mod:`marketplace.corpus.neardup`).
"""

from __future__ import annotations

import logging
import random
from collections import deque

from marketplace.corpus.neardup import NearDuplicateFilter
from marketplace.corpus.records import SourceRecord
from marketplace.corpus.sources.base import TextSource
from marketplace.corpus.target import TargetGuard

__all__ = ["RecordFilter", "SourcePool"]

logger = logging.getLogger(__name__)


class RecordFilter:
    """Accepts a record once: not seen before (case/whitespace-insensitive), clear of the target and,
    with ``near_duplicates``, not a near-duplicate of an accepted record."""

    def __init__(self, guard: TargetGuard, *, near_duplicates: bool = False) -> None:
        self.guard = guard
        self._seen: set[str] = set()
        self._near = NearDuplicateFilter() if near_duplicates else None
        self.rejected_duplicate = 0
        self.rejected_near_duplicate = 0
        self.rejected_target = 0

    def accept(self, record: SourceRecord) -> bool:
        key = " ".join(record.text.casefold().split())
        if key in self._seen:
            self.rejected_duplicate += 1
            return False
        if self.guard.overlaps(record.text):
            self.rejected_target += 1
            return False
        if self._near is not None and not self._near.accept(record.text):
            self.rejected_near_duplicate += 1
            return False
        self._seen.add(key)
        return True


class SourcePool:
    """The records of one source in a seeded random order of its units, handed out once each."""

    def __init__(self, source: TextSource, seed: int, record_filter: RecordFilter) -> None:
        self.source = source
        self._filter = record_filter
        self._units = source.units()
        self._order = list(range(len(self._units)))
        # A str seed is hashed with SHA-512 by random.Random: stable across processes and platforms.
        random.Random(f"mkt-corpus:{seed}:{source.name}").shuffle(self._order)
        self._next_unit = 0
        self._pending: deque[SourceRecord] = deque()
        self.used = 0

    def draw(self) -> SourceRecord | None:
        """The next accepted record, or ``None`` when the source is exhausted."""
        while True:
            while self._pending:
                record = self._pending.popleft()
                if self._filter.accept(record):
                    self.used += 1
                    return record
            if self._next_unit >= len(self._order):
                return None
            self._pending.extend(self.source.records_of(self._units[self._order[self._next_unit]]))
            self._next_unit += 1

    def take(self, n: int) -> list[SourceRecord]:
        """Up to ``n`` records (fewer, with a warning, when the source runs out)."""
        out: list[SourceRecord] = []
        while len(out) < n and (record := self.draw()) is not None:
            out.append(record)
        if len(out) < n:
            logger.info("source %s ran out: %d of %d records", self.source.name, len(out), n)
        return out
