"""Consecutive validated batches joined into write groups: fewer, larger lookups against the store.

Reading and validation work in batches of ``IngestLimits.read_batch_size`` records. The database work of a
batch (the ``content_hash IN`` owner query, the near-duplicate band lookup, the bulk inserts) has a
part that does not shrink with the batch: a band lookup probes the index once per key, and on a
large index almost every probe lands on a page of its own, so four lookups of 100,000 keys cost
about twice one lookup of 400,000 (measured on SQLite against 14 million band rows). Joining
batches until a group holds ``IngestLimits.batch_size`` records or :data:`GROUP_CHARS` code points of text
(whichever comes first) keeps the memory bound of the reader (one group plus the batches read
ahead) while the store sees a quarter of the statements. The links are those of the batches one by
one: owner resolution and the near-duplicate rule only depend on the order of the records
(:mod:`marketplace.ingest.lsh_match`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from marketplace.ingest.records import ValidatedBatch

__all__ = ["GROUP_CHARS", "Sketch", "write_groups"]

GROUP_CHARS = 32 * 2**20
Sketch = tuple[Any, Any, Any]  # (signatures (n, P) uint32, has_shingles (n,) bool, band keys (n, bands) int64)


def write_groups(items: Iterable[tuple[ValidatedBatch, Sketch | None]], *, max_records: int,
                 max_chars: int = GROUP_CHARS) -> Iterator[tuple[ValidatedBatch, Sketch | None]]:
    """``(batch, sketch)`` pairs in file order, consecutive ones joined while the group is under
    ``max_records`` records (accepted and quarantined) and ``max_chars`` code points of accepted text.

    A sketch covers its batch's accepted records row for row (``None`` for a batch without any, or
    when near-duplicate detection is off); the joined sketch covers the joined records.
    """
    held: list[tuple[ValidatedBatch, Sketch | None]] = []
    n_records = n_chars = 0
    for batch, sketch in items:
        held.append((batch, sketch))
        n_records += len(batch.records) + len(batch.quarantined)
        n_chars += sum(r.n_chars for r in batch.records)
        if n_records >= max_records or n_chars >= max_chars:
            yield _join(held)
            held, n_records, n_chars = [], 0, 0
    if held:
        yield _join(held)


def _join(held: list[tuple[ValidatedBatch, Sketch | None]]) -> tuple[ValidatedBatch, Sketch | None]:
    if len(held) == 1:
        return held[0]
    batch = ValidatedBatch([r for b, _ in held for r in b.records], [q for b, _ in held for q in b.quarantined])
    sketches = [s for _, s in held if s is not None]
    if not sketches:
        return batch, None
    sigs, has_sig, keys = (np.concatenate([s[part] for s in sketches]) for part in range(3))
    return batch, (sigs, has_sig, keys)
