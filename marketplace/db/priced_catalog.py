"""What a pricing run paid for: a fingerprint of each priced sample's ownership, so a later change shows.

A pricing run pays a sample's *submission* and *provider* for a *text*. If a row of the catalog is
changed after it was priced (``UPDATE samples SET provider_id = ...``, a text swapped, a first owner
turned into a copy, a submission moved to another provider), the books no longer describe the catalog.
So :func:`marketplace.pricing.runs.create_pricing_run` stores, on every allocation row (append-only), the
:func:`fingerprint` of its sample as it was when priced; ``ledger verify``
(:func:`marketplace.ledger.verify.verify_ledger`, check ``catalog``) recomputes it from the current rows
with :func:`changed_priced_samples` and names every sample whose ownership changed, and every priced
sample whose text no longer hashes to its ``content_hash``.

The fingerprint covers: sample id, submission id, provider id, content hash, ``duplicate_of_id``, and the
submission's provider, status and ``copy_of_submission_id``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.db.catalog import Sample, Submission
from marketplace.db.ledger import Allocation

__all__ = ["ChangedSample", "catalog_fingerprints", "changed_priced_samples", "fingerprint"]

_CHUNK = 5000


def fingerprint(sample_id: int, submission_id: int, provider_id: int, content_hash: str, duplicate_of_id: int | None,
                submission_provider_id: int, submission_status: object, copy_of_submission_id: int | None) -> str:
    """sha256 of a sample's ownership-relevant columns (see the module docstring)."""
    status = getattr(submission_status, "value", submission_status)
    fields = (sample_id, submission_id, provider_id, content_hash, duplicate_of_id, submission_provider_id, status,
              copy_of_submission_id)
    return hashlib.sha256("|".join("" if f is None else str(f) for f in fields).encode()).hexdigest()


def _ownership_rows(session: Session, sample_ids: Sequence[int]) -> Iterator[tuple[int, str, str]]:
    """(sample id, fingerprint now, text digest now) of these samples, as the catalog holds them now."""
    s, sub = Sample, Submission
    stmt = (select(s.id, s.submission_id, s.provider_id, s.content_hash, s.duplicate_of_id, sub.provider_id,
                   sub.status, sub.copy_of_submission_id, s.text)
            .join(sub, sub.id == s.submission_id))
    for start in range(0, len(sample_ids), _CHUNK):
        chunk = list(sample_ids[start : start + _CHUNK])
        for sid, sub_id, pid, chash, dup, sub_pid, status, copy_of, text in session.execute(
                stmt.where(s.id.in_(chunk))):
            text_ok = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() == chash
            yield (int(sid), fingerprint(int(sid), int(sub_id), int(pid), chash, dup, int(sub_pid), status, copy_of),
                   "" if text_ok else "text")


def catalog_fingerprints(session: Session, sample_ids: Sequence[int]) -> dict[int, str]:
    """The fingerprint of each sample as it is now (what a new pricing run stores on its allocations)."""
    return {sid: fp for sid, fp, _ in _ownership_rows(session, sample_ids)}


@dataclass(frozen=True)
class ChangedSample:
    """A priced sample whose catalog rows no longer match what its pricing run paid for."""

    pricing_run_id: int
    sample_id: int
    what: str  # "ownership" (fingerprint differs), "text" (text no longer hashes to content_hash), "missing"


def changed_priced_samples(session: Session) -> list[ChangedSample]:
    """Every priced sample (allocations that carry a fingerprint) whose catalog rows changed since."""
    stored = session.execute(
        select(Allocation.pricing_run_id, Allocation.sample_id, Allocation.catalog_sha256)
        .where(Allocation.catalog_sha256.is_not(None)).order_by(Allocation.pricing_run_id, Allocation.sample_id)
    ).all()
    if not stored:
        return []
    ids = sorted({int(sid) for _, sid, _ in stored})
    now: dict[int, tuple[str, str]] = {sid: (fp, text) for sid, fp, text in _ownership_rows(session, ids)}
    out: list[ChangedSample] = []
    text_reported: set[int] = set()
    for run_id, sid, fp in stored:
        current = now.get(int(sid))
        if current is None:
            out.append(ChangedSample(int(run_id), int(sid), "missing"))
        elif current[0] != fp:
            out.append(ChangedSample(int(run_id), int(sid), "ownership"))
        if current is not None and current[1] and int(sid) not in text_reported:
            text_reported.add(int(sid))
            out.append(ChangedSample(int(run_id), int(sid), "text"))
    return out
