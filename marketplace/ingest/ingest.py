"""``ingest_file``: one provider file into the catalog, accepted whole or rejected whole.

Unit of work: the caller opens the transaction (``with session.begin()``) and commits; this module
only executes statements. On :class:`~marketplace.errors.RejectedFileError` (or any error) the caller
rolls back, so a rejected file leaves the database exactly as it was, provider row included.

Order of operations for a new file:

1. :func:`~marketplace.ingest.sources.open_source`: file-level checks and the sha256 of the bytes;
2. same bytes from the same provider -> the existing submission is returned (nothing written);
   same bytes from another provider -> a ``copy`` submission whose samples all point at the
   original's first owners (:func:`~marketplace.ingest.owners.record_copy`), so a copy can never be
   credited;
3. otherwise a submission row, then per write group (consecutive batches joined,
   :mod:`marketplace.ingest.write_groups`): validation, owner resolution
   (:mod:`marketplace.ingest.owners`: ``content_hash IN`` queries against everything stored,
   including this file's earlier groups, then the near-duplicate index), bulk inserts of the
   samples; the near-duplicate index keeps its new entries in memory and writes them in sorted
   bulk inserts (:mod:`marketplace.ingest.pending_index`);
4. the file-level decision (:meth:`RecordStream.finish`), the index's last entries, then the
   submission's counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marketplace.db.audit import record_audit
from marketplace.db.base import utcnow
from marketplace.db.catalog import DuplicateKind, Provider, QuarantinedRecord, Sample, Submission, SubmissionStatus
from marketplace.db.locks import lock_catalog_owners
from marketplace.errors import ConflictError
from marketplace.ingest.bulk import allocate_ids, bulk_insert, bulk_session
from marketplace.ingest.neardup import NearDupIndexStore
from marketplace.ingest.normalise import NORMALISATION_VERSION
from marketplace.ingest.owners import BatchOwners, record_copy, stored_owners
from marketplace.ingest.params import DedupParams, FieldMapping, IngestLimits
from marketplace.ingest.prefetch import prefetch
from marketplace.ingest.records import RecordStream, ValidatedBatch
from marketplace.ingest.skeleton import MATCHING_VERSION
from marketplace.ingest.sources import FileFormat, Source, open_source
from marketplace.ingest.write_groups import Sketch, write_groups
from marketplace.names import display_name, validate_name

__all__ = ["IngestReport", "ingest_file", "submission_params_sha256"]

log = logging.getLogger(__name__)
_SAMPLES = cast(Table, Sample.__table__)
_QUARANTINE = cast(Table, QuarantinedRecord.__table__)
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
    status: Literal["accepted", "copy"]
    existing: bool
    content_sha256: str
    copy_of_submission_id: int | None  # the original of a copy
    params_sha256: str | None  # see submission_params_sha256
    # Records of the file: read = accepted + quarantined; duplicates are accepted records linked to an owner.
    n_records: int
    n_accepted: int
    n_quarantined: int
    # Of the accepted: linked to a first owner with the same content hash, or a near match.
    n_exact_duplicates: int
    n_near_duplicates: int
    reasons: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0  # wall-clock seconds
    field_mapping: dict[str, str] = field(default_factory=dict)  # the resolved mapping, e.g. {"text": "body"}

    @property
    def n_first_owner(self) -> int:
        return self.n_accepted - self.n_exact_duplicates - self.n_near_duplicates


def submission_params_sha256(limits: IngestLimits, mapping: dict[str, str], dedup: DedupParams | None) -> str:
    """The stamp stored in ``submissions.params_sha256``: everything that shaped the samples."""
    payload = {
        "limits": limits.sha256(),
        "mapping": mapping,
        "normalisation": NORMALISATION_VERSION,
        "matching": MATCHING_VERSION,
        "near_duplicates": dedup.sha256() if dedup is not None else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Providers and existing submissions
# ---------------------------------------------------------------------------------------------------
def _provider_id(session: Session, clean: str) -> int:
    """The id of the provider called ``clean`` (a validated name), created on first use."""
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


_REPORT_STATUS: dict[SubmissionStatus, Literal["accepted", "copy"]] = {
    SubmissionStatus.ACCEPTED: "accepted", SubmissionStatus.COPY: "copy"}
# IngestReport fields copied as they are stored on the submission row.
_STORED_FIELDS = ("filename", "format", "content_sha256", "n_records", "n_accepted", "n_quarantined",
                  "n_exact_duplicates", "n_near_duplicates", "copy_of_submission_id", "params_sha256")


def _report_of(session: Session, sub: Submission, provider: str, *, existing: bool, elapsed_s: float) -> IngestReport:
    return IngestReport(
        submission_id=sub.id, provider=provider, status=_REPORT_STATUS[SubmissionStatus(sub.status)], existing=existing,
        reasons=_reasons_of(session, sub.id), field_mapping=dict(sub.field_mapping or {}), elapsed_s=elapsed_s,
        **{name: getattr(sub, name) for name in _STORED_FIELDS},
    )


def _explicit_mapping_dict(mapping: FieldMapping) -> dict[str, str] | None:
    if mapping.text_field is not None:
        return {"text": mapping.text_field}
    if mapping.prompt_field is not None and mapping.response_field is not None:
        return {"prompt": mapping.prompt_field, "response": mapping.response_field}
    return None


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

    def finish(self) -> None:
        """Write what is still held in memory (the near-duplicate index's pending entries)."""
        if self.near is not None:
            self.near.flush()

    def sketch(self, batch: ValidatedBatch) -> Sketch | None:
        """MinHash signatures, has-shingles mask and band keys of every record of the batch.

        Pure numpy (no database): runs in the prefetch thread, ahead of :meth:`write`.
        """
        if self.near is None or not batch.records:
            return None
        return self.near.signatures([r.text for r in batch.records])

    def write(self, batch: ValidatedBatch, sketch: Sketch | None) -> None:
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

    def _write_samples(self, recs: list[Any], now: Any, sketch: Sketch | None) -> None:
        hashes = [r.content_hash for r in recs]
        owners = BatchOwners.from_hashes(hashes, stored_owners(self.session, list(set(hashes))))
        candidates = owners.candidates
        sigs = has_sig = keys = None
        if self.near is not None and candidates and sketch is not None:
            sigs, has_sig, keys = (a[candidates] for a in sketch)
            owners.add_near(self.near.link(sigs, has_sig, keys))

        first_owner_rows = owners.first_owner_rows
        ids_by_row = dict(zip(first_owner_rows, allocate_ids(self.session, _SAMPLES, len(first_owner_rows)),
                              strict=True))
        created = self._created_value(now)
        bulk_insert(self.session, _SAMPLES, ("id", *_SAMPLE_COLUMNS),
                    [(ids_by_row[i], *self._row(recs[i], None, None, created)) for i in first_owner_rows],
                    pg_types=("int8", *_SAMPLE_PG_TYPES))
        dup_rows = []
        for i, rec in enumerate(recs):
            owner = owners.owner_of(i, ids_by_row)
            if owner is None:
                continue
            dup_rows.append(self._row(rec, owner[0], owner[1], created))
            if owner[1] is DuplicateKind.EXACT:
                self.n_exact += 1
            else:
                self.n_near += 1
        bulk_insert(self.session, _SAMPLES, _SAMPLE_COLUMNS, dup_rows, pg_types=_SAMPLE_PG_TYPES)

        if self.near is not None and first_owner_rows and sigs is not None:
            pos = {row: k for k, row in enumerate(candidates)}
            keep = [pos[i] for i in first_owner_rows if has_sig[pos[i]]]  # type: ignore[index]
            self.near.add([ids_by_row[candidates[k]] for k in keep], sigs[keep], keys[keep])  # type: ignore[index]

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
    actor: str | None = None,
) -> IngestReport:
    """Ingest one file (or saved HF dataset folder) for ``provider_name`` in the caller's transaction.

    ``provider_name`` must be a valid name (:func:`marketplace.names.validate_name`, ValidationError
    otherwise). A new submission or copy is recorded in the audit trail as ``ingested`` by ``actor``
    (default :func:`marketplace.db.audit.current_actor`).

    ``dedup_params=None`` switches near-duplicate detection off (exact duplicates are always linked).
    Raises :class:`~marketplace.errors.RejectedFileError` for a rejected file (the caller must roll
    back), :class:`~marketplace.errors.ConflictError` when the same provider re-submits the same bytes
    with a different explicit field mapping.
    """
    t0 = time.perf_counter()
    provider = validate_name(provider_name, "provider")
    mapping = mapping or FieldMapping()
    limits = limits or IngestLimits()
    source = open_source(path, fmt, limits)
    # From here to COMMIT, first owners are decided by one transaction at a time (marketplace/db/locks.py).
    lock_catalog_owners(session)
    provider_id = _provider_id(session, provider)
    sub = _resubmission(session, provider_id, provider, source, mapping)
    if sub is not None:
        log.info("%s: already ingested by %s as submission %d", display_name(source.path.name),
                 display_name(provider), sub.id)
        return _report_of(session, sub, provider, existing=True, elapsed_s=time.perf_counter() - t0)
    original = session.execute(
        select(Submission).where(Submission.content_sha256 == source.content_sha256,
                                 Submission.status == SubmissionStatus.ACCEPTED)
        .order_by(Submission.id).limit(1)
    ).scalar_one_or_none()
    if original is not None:
        sub = record_copy(session, original, provider_id, source)
        log.info("%s: same bytes as submission %d; recorded as copy %d", display_name(source.path.name),
                 original.id, sub.id)
    else:
        sub = _write_new_submission(session, source, provider_id, mapping, limits, dedup_params, t0)
    record_audit(session, "ingested", actor=actor, provider_id=provider_id, submission_id=sub.id,
                 provider=provider, filename=sub.filename, content_sha256=sub.content_sha256,
                 status=SubmissionStatus(sub.status).value, n_accepted=sub.n_accepted,
                 copy_of_submission_id=sub.copy_of_submission_id)
    return _report_of(session, sub, provider, existing=False, elapsed_s=time.perf_counter() - t0)


def _resubmission(session: Session, provider_id: int, provider: str, source: Source,
                  mapping: FieldMapping) -> Submission | None:
    """The provider's earlier submission of the same bytes, if any; ConflictError when it was ingested
    with another explicit field mapping."""
    existing = session.execute(
        select(Submission).where(Submission.provider_id == provider_id,
                                 Submission.content_sha256 == source.content_sha256)
    ).scalar_one_or_none()
    wanted = _explicit_mapping_dict(mapping)
    if existing is not None and wanted is not None and wanted != dict(existing.field_mapping or {}):
        raise ConflictError(
            f"{display_name(source.path.name)}: provider {display_name(provider)} already submitted these bytes as "
            f"submission {existing.id} with field mapping {existing.field_mapping}; the same file cannot be ingested "
            f"again with {wanted}. Submit a corrected file instead."
        )
    return existing


def _write_new_submission(session: Session, source: Source, provider_id: int, mapping: FieldMapping,
                          limits: IngestLimits, dedup_params: DedupParams | None, t0: float) -> Submission:
    """A new accepted submission: every batch validated, owner-resolved and written, then its counts."""
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
        # Consecutive batches are written as one group (marketplace/ingest/write_groups.py).
        for batch, sketch in write_groups(prefetch(((b, writer.sketch(b)) for b in stream.batches()), depth=2),
                                          max_records=limits.batch_size):
            writer.write(batch, sketch)
            if stream.n_records >= next_log:
                rate = stream.n_records / max(time.perf_counter() - t0, 1e-9)
                log.info("%s: %d records read (%.0f records/s)", source.path.name, stream.n_records, rate)
                next_log += 100_000
        stream.finish()
        writer.finish()
    mapping_dict = stream.resolved.as_dict() if stream.resolved is not None else {}
    session.execute(update(Submission).where(Submission.id == sub_id).values(
        n_records=stream.n_records, n_accepted=stream.n_accepted, n_quarantined=stream.n_quarantined,
        n_exact_duplicates=writer.n_exact, n_near_duplicates=writer.n_near, field_mapping=mapping_dict,
        params_sha256=submission_params_sha256(limits, mapping_dict, dedup_params),
    ))
    log.info("%s: accepted as submission %d: %d records, %d quarantined, %d exact + %d near duplicates (%.1f s)",
             display_name(source.path.name), sub_id, stream.n_records, stream.n_quarantined, writer.n_exact,
             writer.n_near, time.perf_counter() - t0)
    sub = session.get(Submission, sub_id)
    assert sub is not None
    session.refresh(sub)
    return sub
