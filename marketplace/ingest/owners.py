"""Who owns a text: first-owner resolution and duplicate linking for ingestion.

Of all samples with the same normalised content, exactly one is the *first owner*
(:func:`marketplace.db.eligibility.is_first_owner`); every later copy, exact or near, links to it and
earns nothing. Links always point at a first owner, never at another duplicate:

- a record whose content hash is stored already links to that hash's first owner (kind ``exact``);
  when every stored sample with that hash is itself a near-duplicate, it links to *their* first owner
  with kind ``near`` (it is not byte-identical to the owner), so ``kind = 'exact'`` always means
  "same content hash as the owner";
- a record whose hash appears earlier in the same batch links to that earlier record;
- of the remaining records, those the near-duplicate index matches link (kind ``near``) to the
  matched sample, or to the matched earlier record of the batch;
- a record whose bytes equal a whole submission of another provider (:func:`record_copy`) gets a
  ``copy`` submission whose samples all point at the original's first owners.

:class:`BatchOwners` holds one batch's decisions; the writer allocates the first owners' ids and asks
:meth:`BatchOwners.owner_of` for every other record. The caller owns the session.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, case, func, insert, literal, select, update
from sqlalchemy.orm import Session

from marketplace.db.base import utcnow
from marketplace.db.catalog import DuplicateKind, QuarantinedRecord, Sample, Submission, SubmissionStatus
from marketplace.db.eligibility import is_first_owner
from marketplace.ingest.bulk import in_list, in_list_param
from marketplace.ingest.lsh_match import NearLink
from marketplace.ingest.sources import Source

__all__ = ["BatchOwners", "Owner", "record_copy", "stored_owners"]

_HASH_LOOKUP_CHUNK = 5000
_SAMPLES = cast(Table, Sample.__table__)
_QUARANTINE = cast(Table, QuarantinedRecord.__table__)
Owner = tuple[int, DuplicateKind]  # (first owner's sample id, kind of the link to it)


def stored_owners(session: Session, hashes: Sequence[str]) -> dict[str, Owner]:
    """Stored first owners of these content hashes: ``hash -> (first owner id, kind of a link to it)``."""
    s = _SAMPLES.c
    owner = func.min(case((is_first_owner(), s.id)))
    root = func.min(s.duplicate_of_id)
    stmt = (select(s.content_hash, owner, root)
            .where(in_list(session, s.content_hash, integer=False))
            .group_by(s.content_hash))
    out: dict[str, Owner] = {}
    for start in range(0, len(hashes), _HASH_LOOKUP_CHUNK):
        params = in_list_param(session, list(hashes[start : start + _HASH_LOOKUP_CHUNK]))
        for h, owner_id, root_id in session.execute(stmt, params):
            if owner_id is not None:
                out[h] = (int(owner_id), DuplicateKind.EXACT)
            elif root_id is not None:
                out[h] = (int(root_id), DuplicateKind.NEAR)
    return out


@dataclass
class BatchOwners:
    """Ownership of one batch of records (rows 0..n-1, in file order).

    ``candidates``: rows whose content is new to the store and first in the batch (the rows the
    near-duplicate index is asked about); ``first_owner_rows`` are those it did not match.
    """

    _stored: dict[int, Owner] = field(default_factory=dict)  # row -> stored owner
    _same_hash: dict[int, int] = field(default_factory=dict)  # row -> earlier row with the same hash
    _near: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)  # row -> (sample, row)
    candidates: list[int] = field(default_factory=list)

    @classmethod
    def from_hashes(cls, hashes: Sequence[str], stored: dict[str, Owner]) -> BatchOwners:
        """Exact links: to the stored owner of a hash, else to the hash's first row in the batch."""
        owners = cls()
        first_in_batch: dict[str, int] = {}
        for i, h in enumerate(hashes):
            if h in stored:
                owners._stored[i] = stored[h]
            elif h in first_in_batch:
                owners._same_hash[i] = first_in_batch[h]
            else:
                first_in_batch[h] = i
                owners.candidates.append(i)
        return owners

    def add_near(self, links: Iterable[NearLink]) -> None:
        """Near links of candidates (``NearLink.row`` / ``batch_row`` index :attr:`candidates`)."""
        for nl in links:
            batch_row = self.candidates[nl.batch_row] if nl.batch_row is not None else None
            self._near[self.candidates[nl.row]] = (nl.sample_id, batch_row)

    @property
    def first_owner_rows(self) -> list[int]:
        return [i for i in self.candidates if i not in self._near]

    def owner_of(self, row: int, ids_by_row: dict[int, int]) -> Owner | None:
        """(first owner id, kind) of a duplicate row; None for a first owner. ``ids_by_row``: the ids
        given to :attr:`first_owner_rows`."""
        if row in self._near:
            sample_id, batch_row = self._near[row]
            return (sample_id if sample_id is not None else ids_by_row[cast(int, batch_row)]), DuplicateKind.NEAR
        if row in self._stored:
            return self._stored[row]
        if row in self._same_hash:
            first = self._same_hash[row]  # the first row of this batch with the same hash
            target = self.owner_of(first, ids_by_row)
            return (ids_by_row[first], DuplicateKind.EXACT) if target is None else target
        return None


def record_copy(session: Session, original: Submission, provider_id: int, source: Source) -> Submission:
    """Same bytes as ``original`` (another provider's): a ``copy`` submission whose every sample points at
    the original's first owners (and whose quarantine repeats the original's)."""
    now = utcnow()
    sub_id = int(session.execute(
        insert(Submission).values(
            provider_id=provider_id, filename=source.path.name, format=original.format,
            content_sha256=source.content_sha256, byte_size=source.byte_size, status=SubmissionStatus.COPY,
            copy_of_submission_id=original.id, field_mapping=dict(original.field_mapping or {}),
            n_records=original.n_records, n_accepted=original.n_accepted, n_quarantined=original.n_quarantined,
            n_exact_duplicates=0, n_near_duplicates=0, params_sha256=original.params_sha256, created_at=now,
        ).returning(Submission.id)
    ).scalar_one())
    s = _SAMPLES.c
    kind = case((is_first_owner(), literal(DuplicateKind.EXACT.value)), else_=s.duplicate_kind)
    session.execute(
        insert(_SAMPLES).from_select(
            ["submission_id", "provider_id", "record_index", "text", "prompt_chars", "content_hash", "n_chars",
             "source", "licence", "duplicate_of_id", "duplicate_kind", "created_at"],
            select(literal(sub_id), literal(provider_id), s.record_index, s.text, s.prompt_chars, s.content_hash,
                   s.n_chars, s.source, s.licence, func.coalesce(s.duplicate_of_id, s.id), kind,
                   literal(now, _SAMPLES.c.created_at.type))
            .where(s.submission_id == original.id),
        )
    )
    q = _QUARANTINE.c
    session.execute(
        insert(_QUARANTINE).from_select(
            ["submission_id", "record_index", "location", "reason_code", "detail", "excerpt", "created_at"],
            select(literal(sub_id), q.record_index, q.location, q.reason_code, q.detail, q.excerpt,
                   literal(now, _QUARANTINE.c.created_at.type))
            .where(q.submission_id == original.id),
        )
    )
    kinds = select(Sample.duplicate_kind, func.count()).where(Sample.submission_id == sub_id)
    counts = dict(session.execute(kinds.group_by(Sample.duplicate_kind)).tuples().all())
    session.execute(update(Submission).where(Submission.id == sub_id).values(
        n_exact_duplicates=int(counts.get(DuplicateKind.EXACT, 0)),
        n_near_duplicates=int(counts.get(DuplicateKind.NEAR, 0)),
    ))
    sub = session.get(Submission, sub_id)
    assert sub is not None
    session.refresh(sub)
    return sub
