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
from collections.abc import Sequence
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


def _sample_fingerprint(sid: int, sub_id: int, pid: int, chash: str, dup: int | None, sub_pid: int, status: object,
                        copy_of: int | None) -> str:
    return fingerprint(int(sid), int(sub_id), int(pid), chash, dup, int(sub_pid), status, copy_of)


def _text_ok(text: str, content_hash: str) -> bool:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() == content_hash


def catalog_fingerprints(session: Session, sample_ids: Sequence[int]) -> dict[int, str]:
    """The fingerprint of each of ``sample_ids`` as the catalog holds it now (what a new pricing run stores
    on its allocations). Reads ``_CHUNK`` ids per query and no text: pass a bounded batch of ids."""
    s, sub = Sample, Submission
    stmt = (select(s.id, s.submission_id, s.provider_id, s.content_hash, s.duplicate_of_id, sub.provider_id,
                   sub.status, sub.copy_of_submission_id)
            .join(sub, sub.id == s.submission_id))
    out: dict[int, str] = {}
    for start in range(0, len(sample_ids), _CHUNK):
        chunk = list(sample_ids[start : start + _CHUNK])
        for row in session.execute(stmt.where(s.id.in_(chunk))):
            out[int(row[0])] = _sample_fingerprint(*row)
    return out


@dataclass(frozen=True)
class ChangedSample:
    """A priced sample whose catalog rows no longer match what its pricing run paid for."""

    pricing_run_id: int
    sample_id: int
    what: str  # "ownership" (fingerprint differs), "text" (text no longer hashes to content_hash), "missing"


_ORDER = {"missing": 0, "ownership": 0, "text": 1}


def changed_priced_samples(session: Session) -> list[ChangedSample]:
    """Every priced sample (allocations that carry a fingerprint) whose catalog rows changed since, ordered
    by pricing run, sample and kind; a text change is reported once per sample, under its first run.

    One streamed query (allocations joined to the sample and its submission as they are now, by sample
    id): memory holds one batch of rows and the changes found, never every allocation; each sample's
    text is hashed once however many runs priced it.
    """
    s, sub, a = Sample, Submission, Allocation
    stmt = (
        select(a.pricing_run_id, a.sample_id, a.catalog_sha256, s.id, s.submission_id, s.provider_id,
               s.content_hash, s.duplicate_of_id, sub.provider_id, sub.status, sub.copy_of_submission_id,
               sub.id, s.text)
        .outerjoin(s, s.id == a.sample_id)
        .outerjoin(sub, sub.id == s.submission_id)
        .where(a.catalog_sha256.is_not(None))
        .order_by(a.sample_id, a.pricing_run_id)
        .execution_options(yield_per=_CHUNK)
    )
    out: list[ChangedSample] = []
    last_sample: int | None = None
    now: str | None = None  # the current sample's fingerprint (None: the sample or its submission is gone)
    for row in session.execute(stmt):
        run_id, sid, stored = int(row[0]), int(row[1]), row[2]
        if sid != last_sample:  # the first (lowest) run that priced this sample
            last_sample = sid
            found = row[3] is not None and row[11] is not None
            now = _sample_fingerprint(*row[3:11]) if found else None
            if found and not _text_ok(row[12], row[6]):
                out.append(ChangedSample(run_id, sid, "text"))
        if now is None:
            out.append(ChangedSample(run_id, sid, "missing"))
        elif now != stored:
            out.append(ChangedSample(run_id, sid, "ownership"))
    out.sort(key=lambda c: (c.pricing_run_id, c.sample_id, _ORDER[c.what]))
    return out
