"""``ingest_file``: one provider file into the catalog, accepted whole or rejected whole.

Unit of work: the caller opens the transaction (``with session.begin()``) and commits; this module
only executes statements. On :class:`~marketplace.errors.RejectedFileError` (or any error) the caller
rolls back, so a rejected file leaves the database exactly as it was, provider row included.

Order of operations for a new file:

1. :func:`~marketplace.ingest.sources.open_source`: file-level checks and the sha256 of the bytes;
2. same bytes from the same provider -> the existing submission is returned (nothing written);
   same bytes from another provider -> a ``copy`` submission whose samples all point at the
   original's first owners (:func:`_record_copy`), so a copy can never be credited;
3. otherwise a submission row, then per batch: validation, exact-duplicate resolution (one
   ``content_hash IN`` query per batch against everything stored, including this file's earlier
   batches), near-duplicate resolution (LSH, :mod:`marketplace.ingest.neardup`), bulk inserts;
4. the file-level decision (:meth:`RecordStream.finish`), then the submission's counts.

Duplicate links always point at a *first owner* (``duplicate_of_id IS NULL``). A record whose text is
an exact copy of a sample that is itself a near-duplicate is linked to that sample's first owner
with kind ``near`` (it is not byte-identical to the owner), so ``kind = 'exact'`` always means "same
content hash as the owner".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, case, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marketplace.db.base import utcnow
from marketplace.db.catalog import DuplicateKind, Provider, QuarantinedRecord, Sample, Submission, SubmissionStatus
from marketplace.errors import ConflictError, ValidationError
from marketplace.ingest.bulk import (
    allocate_ids,
    bulk_insert,
    bulk_session,
    in_list,
    in_list_param,
)
from marketplace.ingest.neardup import NearDupIndexStore
from marketplace.ingest.normalise import NORMALISATION_VERSION
from marketplace.ingest.params import DedupParams, FieldMapping, IngestLimits
from marketplace.ingest.prefetch import prefetch
from marketplace.ingest.records import RecordStream, ValidatedBatch
from marketplace.ingest.sources import FileFormat, Source, open_source

__all__ = ["IngestReport", "ingest_file", "submission_params_sha256"]

log = logging.getLogger(__name__)
_HASH_LOOKUP_CHUNK = 5000
_SAMPLES = cast(Table, Sample.__table__)
_QUARANTINE = cast(Table, QuarantinedRecord.__table__)
_Sketch = tuple[Any, Any, Any]  # (signatures (n, P) uint32, has_shingles (n,) bool, band keys (n, bands) int64)
_SAMPLE_COLUMNS = ("submission_id", "provider_id", "record_index", "text", "prompt_chars", "content_hash", "n_chars",
                   "source", "licence", "duplicate_of_id", "duplicate_kind", "created_at")
# Binary COPY types of those columns (marketplace.db.catalog: ids are BIGINT on PostgreSQL).
_SAMPLE_PG_TYPES = ("int8", "int8", "int4", "text", "int4", "varchar", "int4", "varchar", "varchar", "int8",
                    "varchar", "timestamptz")


@dataclass(frozen=True)
class IngestReport:
    """What happened to one file. ``existing`` is True when the same provider had already submitted
    the same bytes (nothing was written). ``reasons`` counts quarantined records per reason code."""

    submission_id: int
    provider: str
    filename: str
    format: str
    status: str  # "accepted" | "copy"
    existing: bool
    content_sha256: str
    n_records: int
    n_accepted: int
    n_quarantined: int
    n_exact_duplicates: int
    n_near_duplicates: int
    reasons: dict[str, int] = field(default_factory=dict)
    field_mapping: dict[str, str] = field(default_factory=dict)
    copy_of_submission_id: int | None = None
    params_sha256: str | None = None
    elapsed_s: float = 0.0

    @property
    def n_first_owner(self) -> int:
        return self.n_accepted - self.n_exact_duplicates - self.n_near_duplicates


def submission_params_sha256(limits: IngestLimits, mapping: dict[str, str], dedup: DedupParams | None) -> str:
    """The stamp stored in ``submissions.params_sha256``: everything that shaped the samples."""
    payload = {
        "limits": limits.sha256(),
        "mapping": mapping,
        "normalisation": NORMALISATION_VERSION,
        "near_duplicates": dedup.sha256() if dedup is not None else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Providers and existing submissions
# ---------------------------------------------------------------------------------------------------
def _provider_id(session: Session, name: str) -> int:
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise ValidationError(f"provider name {name!r} must be 1-200 characters; pass --provider NAME")
    stmt = select(Provider.id).where(Provider.name == clean)
    found = session.execute(stmt).scalar_one_or_none()
    if found is not None:
        return int(found)
    try:
        with session.begin_nested():  # a concurrent ingest may create the provider first
            return int(session.execute(
                insert(Provider).values(name=clean, created_at=utcnow()).returning(Provider.id)
            ).scalar_one())
    except IntegrityError:
        return int(session.execute(stmt).scalar_one())


def _reasons_of(session: Session, submission_id: int) -> dict[str, int]:
    rows = session.execute(
        select(QuarantinedRecord.reason_code, func.count())
        .where(QuarantinedRecord.submission_id == submission_id)
        .group_by(QuarantinedRecord.reason_code)
    ).all()
    return {str(code): int(n) for code, n in sorted(rows)}


def _report_of(session: Session, sub: Submission, provider: str, *, existing: bool, elapsed_s: float) -> IngestReport:
    return IngestReport(
        submission_id=sub.id,
        provider=provider,
        filename=sub.filename,
        format=sub.format,
        status=SubmissionStatus(sub.status).value,
        existing=existing,
        content_sha256=sub.content_sha256,
        n_records=sub.n_records,
        n_accepted=sub.n_accepted,
        n_quarantined=sub.n_quarantined,
        n_exact_duplicates=sub.n_exact_duplicates,
        n_near_duplicates=sub.n_near_duplicates,
        reasons=_reasons_of(session, sub.id),
        field_mapping=dict(sub.field_mapping or {}),
        copy_of_submission_id=sub.copy_of_submission_id,
        params_sha256=sub.params_sha256,
        elapsed_s=elapsed_s,
    )


def _explicit_mapping_dict(mapping: FieldMapping) -> dict[str, str] | None:
    if mapping.text_field is not None:
        return {"text": mapping.text_field}
    if mapping.prompt_field is not None and mapping.response_field is not None:
        return {"prompt": mapping.prompt_field, "response": mapping.response_field}
    return None


def _record_copy(session: Session, original: Submission, provider_id: int, source: Source) -> Submission:
    """Same bytes as ``original`` (another provider's): every sample points at the original's owners."""
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
    kind = case((s.duplicate_of_id.is_(None), literal(DuplicateKind.EXACT.value)), else_=s.duplicate_kind)
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
    counts: dict[DuplicateKind | None, int] = dict(session.execute(  # type: ignore[arg-type]
        select(Sample.duplicate_kind, func.count())
        .where(Sample.submission_id == sub_id)
        .group_by(Sample.duplicate_kind)
    ).all())
    n_exact = int(counts.get(DuplicateKind.EXACT, 0))
    n_near = int(counts.get(DuplicateKind.NEAR, 0))
    session.execute(update(Submission).where(Submission.id == sub_id)
                    .values(n_exact_duplicates=n_exact, n_near_duplicates=n_near))
    sub = session.get(Submission, sub_id)
    assert sub is not None
    session.refresh(sub)
    return sub


# ---------------------------------------------------------------------------------------------------
# New submissions
# ---------------------------------------------------------------------------------------------------
class _Writer:
    """Writes one submission's batches: duplicate resolution and bulk inserts."""

    def __init__(self, session: Session, submission_id: int, provider_id: int, dedup: DedupParams | None) -> None:
        self.session = session
        self.submission_id = submission_id
        self.provider_id = provider_id
        self.near = NearDupIndexStore(session, dedup) if dedup is not None else None
        self.n_exact = 0
        self.n_near = 0

    def _lookup_hashes(self, hashes: list[str]) -> dict[str, tuple[int, DuplicateKind]]:
        """Stored owners of these content hashes: ``hash -> (first owner id, kind of a link to it)``."""
        s = _SAMPLES.c
        owner = func.min(case((s.duplicate_of_id.is_(None), s.id)))
        root = func.min(s.duplicate_of_id)
        out: dict[str, tuple[int, DuplicateKind]] = {}
        stmt = (select(s.content_hash, owner, root)
                .where(in_list(self.session, s.content_hash, integer=False))
                .group_by(s.content_hash))
        for start in range(0, len(hashes), _HASH_LOOKUP_CHUNK):
            params = in_list_param(self.session, hashes[start : start + _HASH_LOOKUP_CHUNK])
            for h, owner_id, root_id in self.session.execute(stmt, params):
                if owner_id is not None:
                    out[h] = (int(owner_id), DuplicateKind.EXACT)
                elif root_id is not None:
                    out[h] = (int(root_id), DuplicateKind.NEAR)
        return out

    def sketch(self, batch: ValidatedBatch) -> _Sketch | None:
        """MinHash signatures, has-shingles mask and band keys of every record of the batch.

        Pure numpy (no database): runs in the prefetch thread, ahead of :meth:`write`.
        """
        if self.near is None or not batch.records:
            return None
        return self.near.signatures([r.text for r in batch.records])

    def write(self, batch: ValidatedBatch, sketch: _Sketch | None) -> None:
        recs = batch.records
        now = utcnow()
        if recs:
            self._write_samples(recs, now, sketch)
        if batch.quarantined:
            self.session.execute(insert(_QUARANTINE), [
                {"submission_id": self.submission_id, "record_index": q.record_index, "location": q.location[:200],
                 "reason_code": q.reason.value, "detail": q.detail, "excerpt": q.excerpt, "created_at": now}
                for q in batch.quarantined
            ])

    def _write_samples(self, recs: list[Any], now: Any, sketch: _Sketch | None) -> None:
        known = self._lookup_hashes(list({r.content_hash for r in recs}))
        # link[i]: ("id", sample_id, kind) | ("row", first row with that hash in this batch) | None (owner)
        link: list[tuple[str, int, DuplicateKind] | None] = [None] * len(recs)
        first_in_batch: dict[str, int] = {}
        owners: list[int] = []
        for i, r in enumerate(recs):
            hit = known.get(r.content_hash)
            if hit is not None:
                link[i] = ("id", hit[0], hit[1])
                continue
            j = first_in_batch.get(r.content_hash)
            if j is not None:
                link[i] = ("row", j, DuplicateKind.EXACT)
                continue
            first_in_batch[r.content_hash] = i
            owners.append(i)

        near_rows: dict[int, tuple[str, int]] = {}  # owner row -> ("id", sample) | ("row", row)
        sigs = has_sig = keys = None
        if self.near is not None and owners and sketch is not None:
            sigs, has_sig, keys = (a[owners] for a in sketch)
            for nl in self.near.link(sigs, has_sig, keys):
                row = owners[nl.row]
                near_rows[row] = ("id", nl.sample_id) if nl.sample_id is not None else ("row", owners[nl.batch_row])  # type: ignore[index]

        first_owner_rows = [i for i in owners if i not in near_rows]
        new_ids = allocate_ids(self.session, _SAMPLES, len(first_owner_rows))
        ids_by_row = dict(zip(first_owner_rows, new_ids, strict=True))
        created = self._created_value(now)
        bulk_insert(self.session, _SAMPLES, ("id", *_SAMPLE_COLUMNS),
                    [(ids_by_row[i], *self._row(recs[i], None, None, created)) for i in first_owner_rows],
                    pg_types=("int8", *_SAMPLE_PG_TYPES))

        def resolve(i: int) -> tuple[int, DuplicateKind] | None:
            """(first owner id, kind) for a duplicate row, None for a first owner."""
            if i in near_rows:
                how, ref = near_rows[i]
                return (ref, DuplicateKind.NEAR) if how == "id" else (ids_by_row[ref], DuplicateKind.NEAR)
            entry = link[i]
            if entry is None:
                return None
            if entry[0] == "id":
                return entry[1], entry[2]
            target = resolve(entry[1])  # the first row of this batch with the same hash
            return (ids_by_row[entry[1]], DuplicateKind.EXACT) if target is None else target

        dup_rows = []
        for i in range(len(recs)):
            if i in ids_by_row:
                continue
            owner_id, kind = resolve(i)  # type: ignore[misc]
            dup_rows.append(self._row(recs[i], owner_id, kind, created))
            if kind is DuplicateKind.EXACT:
                self.n_exact += 1
            else:
                self.n_near += 1
        bulk_insert(self.session, _SAMPLES, _SAMPLE_COLUMNS, dup_rows, pg_types=_SAMPLE_PG_TYPES)

        if self.near is not None and first_owner_rows and sigs is not None:
            pos = {row: k for k, row in enumerate(owners)}
            keep = [pos[i] for i in first_owner_rows if has_sig[pos[i]]]  # type: ignore[index]
            self.near.add([ids_by_row[owners[k]] for k in keep], sigs[keep], keys[keep])  # type: ignore[index]

    def _created_value(self, now: Any) -> Any:
        """``now`` as the database driver wants it (SQLite stores timestamps as text)."""
        dialect = self.session.get_bind().dialect
        # dialect_impl: the TypeDecorator adapted to this dialect (SQLite's text format), as SQLAlchemy
        # itself would bind it; the bare type would hand sqlite3 a datetime to format its own way.
        process = _SAMPLES.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        return process(now) if process is not None else now

    def _row(self, r: Any, dup_of: int | None, kind: DuplicateKind | None, created: Any) -> tuple[Any, ...]:
        # Same order as _SAMPLE_COLUMNS.
        return (self.submission_id, self.provider_id, r.record_index, r.text, r.prompt_chars, r.content_hash,
                len(r.text), r.source, r.licence, dup_of, kind.value if kind is not None else None, created)


def ingest_file(
    session: Session,
    path: str | os.PathLike[str],
    provider_name: str,
    *,
    fmt: FileFormat | str | None = None,
    mapping: FieldMapping | None = None,
    limits: IngestLimits | None = None,
    dedup_params: DedupParams | None = None,
) -> IngestReport:
    """Ingest one file (or saved HF dataset folder) for ``provider_name`` in the caller's transaction.

    ``dedup_params=None`` switches near-duplicate detection off (exact duplicates are always linked).
    Raises :class:`~marketplace.errors.RejectedFileError` for a rejected file (the caller must roll
    back), :class:`~marketplace.errors.ConflictError` when the same provider re-submits the same bytes
    with a different explicit field mapping.
    """
    t0 = time.perf_counter()
    mapping = mapping or FieldMapping()
    limits = limits or IngestLimits()
    source = open_source(path, fmt, limits)
    provider_id = _provider_id(session, provider_name)

    existing = session.execute(
        select(Submission).where(Submission.provider_id == provider_id,
                                 Submission.content_sha256 == source.content_sha256)
    ).scalar_one_or_none()
    if existing is not None:
        wanted = _explicit_mapping_dict(mapping)
        if wanted is not None and wanted != dict(existing.field_mapping or {}):
            raise ConflictError(
                f"{source.path.name}: provider {provider_name!r} already submitted these bytes as submission "
                f"{existing.id} with field mapping {existing.field_mapping}; the same file cannot be ingested "
                f"again with {wanted}. Submit a corrected file instead."
            )
        log.info("%s: already ingested by %s as submission %d", source.path.name, provider_name, existing.id)
        return _report_of(session, existing, provider_name.strip(), existing=True,
                          elapsed_s=time.perf_counter() - t0)

    original = session.execute(
        select(Submission).where(Submission.content_sha256 == source.content_sha256,
                                 Submission.status == SubmissionStatus.ACCEPTED)
        .order_by(Submission.id).limit(1)
    ).scalar_one_or_none()
    if original is not None:
        sub = _record_copy(session, original, provider_id, source)
        log.info("%s: same bytes as submission %d; recorded as copy %d", source.path.name, original.id, sub.id)
        return _report_of(session, sub, provider_name.strip(), existing=False, elapsed_s=time.perf_counter() - t0)

    sub_id = int(session.execute(
        insert(Submission).values(
            provider_id=provider_id, filename=source.path.name, format=source.format_label,
            content_sha256=source.content_sha256, byte_size=source.byte_size, status=SubmissionStatus.ACCEPTED,
            field_mapping={}, n_records=0, n_accepted=0, n_quarantined=0, n_exact_duplicates=0,
            n_near_duplicates=0, created_at=utcnow(),
        ).returning(Submission.id)
    ).scalar_one())
    stream = RecordStream(source, mapping, limits)
    next_log = 100_000
    with bulk_session(session):
        writer = _Writer(session, sub_id, provider_id, dedup_params)
        # Reading, validation and MinHash run one batch ahead in a thread while this one writes.
        for batch, sketch in prefetch(((b, writer.sketch(b)) for b in stream.batches()), depth=2):
            writer.write(batch, sketch)
            if stream.n_records >= next_log:
                rate = stream.n_records / max(time.perf_counter() - t0, 1e-9)
                log.info("%s: %d records read (%.0f records/s)", source.path.name, stream.n_records, rate)
                next_log += 100_000
    stream.finish()
    mapping_dict = stream.resolved.as_dict() if stream.resolved is not None else {}
    session.execute(update(Submission).where(Submission.id == sub_id).values(
        n_records=stream.n_records, n_accepted=stream.n_accepted, n_quarantined=stream.n_quarantined,
        n_exact_duplicates=writer.n_exact, n_near_duplicates=writer.n_near, field_mapping=mapping_dict,
        params_sha256=submission_params_sha256(limits, mapping_dict, dedup_params),
    ))
    elapsed = time.perf_counter() - t0
    log.info("%s: accepted as submission %d: %d records, %d quarantined, %d exact + %d near duplicates (%.1f s)",
             source.path.name, sub_id, stream.n_records, stream.n_quarantined, writer.n_exact, writer.n_near, elapsed)
    return IngestReport(
        submission_id=sub_id, provider=provider_name.strip(), filename=source.path.name, format=source.format_label,
        status=SubmissionStatus.ACCEPTED.value, existing=False, content_sha256=source.content_sha256,
        n_records=stream.n_records, n_accepted=stream.n_accepted, n_quarantined=stream.n_quarantined,
        n_exact_duplicates=writer.n_exact, n_near_duplicates=writer.n_near,
        reasons=dict(sorted(stream.reasons.items())), field_mapping=mapping_dict,
        params_sha256=submission_params_sha256(limits, mapping_dict, dedup_params), elapsed_s=elapsed,
    )

