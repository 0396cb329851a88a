"""Ingesting one file in its own transaction, and the one shape of what came of it.

:func:`ingest_one_file` is the code path of ``marketplace ingest`` and of the ``ingest`` flow's task:
one unit of work per file, retried on what :func:`marketplace.db.transient.is_retryable_idempotent_write_error`
calls retryable (ingestion writes idempotent rows: a retry after a unique-index race links to what the
other writer committed). A file the core refuses (:class:`~marketplace.errors.RejectedFileError`, or
any other :class:`~marketplace.errors.MarketplaceError` such as a re-submission with another field
mapping) becomes a ``rejected`` result; nothing of it was written. Any other error propagates: the
caller decides (the flow records it as ``failed`` with :meth:`FileIngestResult.failed`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from marketplace.db.retry import run_in_transaction
from marketplace.errors import MarketplaceError
from marketplace.ingest.ingest import IngestReport, ingest_file
from marketplace.ingest.params import DedupParams, FieldMapping, IngestLimits
from marketplace.ingest.sources import FileFormat

__all__ = ["FileIngestResult", "IngestOptions", "IngestStatus", "ingest_one_file", "summary_rows"]

IngestStatus = Literal["accepted", "copy", "existing", "rejected", "failed"]


@dataclass(frozen=True)
class FileIngestResult:
    """What happened to one file.

    ``status``: ``accepted`` (a new submission), ``copy`` (another provider's bytes: every sample a
    duplicate), ``existing`` (the provider had submitted these bytes before; nothing written),
    ``rejected`` (refused whole; ``reason_code``, ``location`` and ``message`` say why and how to fix
    it) or ``failed`` (an unexpected error, ``message``; nothing written). Counts are records of the file;
    ``reasons`` counts quarantined records per reason code; ``elapsed_s`` is wall-clock seconds.
    """

    file: str
    status: IngestStatus
    submission_id: int | None = None
    records: int = 0
    accepted: int = 0
    quarantined: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    field_mapping: dict[str, str] = field(default_factory=dict)
    copy_of_submission_id: int | None = None
    elapsed_s: float = 0.0
    reason_code: str | None = None
    location: str | None = None
    message: str | None = None

    @classmethod
    def from_report(cls, file: str, report: IngestReport) -> FileIngestResult:
        status: IngestStatus = "existing" if report.existing else ("copy" if report.status == "copy" else "accepted")
        return cls(
            file, status, report.submission_id, records=report.n_records, accepted=report.n_accepted,
            quarantined=report.n_quarantined, exact_duplicates=report.n_exact_duplicates,
            near_duplicates=report.n_near_duplicates, reasons=dict(report.reasons),
            field_mapping=dict(report.field_mapping), copy_of_submission_id=report.copy_of_submission_id,
            elapsed_s=report.elapsed_s,
        )

    @classmethod
    def rejected(cls, file: str, exc: MarketplaceError) -> FileIngestResult:
        """A refusal: the reason code of a RejectedFileError, else the error's class name."""
        return cls(file, "rejected", reason_code=getattr(exc, "reason_code", type(exc).__name__),
                   location=getattr(exc, "location", None), message=str(exc))

    @classmethod
    def failed(cls, file: str, exc: BaseException) -> FileIngestResult:
        """An unexpected error (the database stayed down through the retries, a bug)."""
        return cls(file, "failed", reason_code=type(exc).__name__, message=str(exc))

    @property
    def refused(self) -> bool:
        return self.status in ("rejected", "failed")

    def as_dict(self) -> dict[str, Any]:
        """The JSON entry of ``marketplace ingest --json`` and of the ``ingest`` flow's result."""
        if self.refused:
            return {"file": self.file, "status": self.status, "reason_code": self.reason_code,
                    "location": self.location, "error": self.message}
        return {"file": self.file, "status": self.status, "submission_id": self.submission_id,
                "records": self.records, "accepted": self.accepted, "quarantined": self.quarantined,
                "exact_duplicates": self.exact_duplicates, "near_duplicates": self.near_duplicates,
                "reasons": self.reasons, "field_mapping": self.field_mapping,
                "copy_of_submission_id": self.copy_of_submission_id, "elapsed_s": round(self.elapsed_s, 3)}

    def summary_row(self) -> dict[str, Any]:
        """One row of the ingestion summary table (the ``ingest`` flow's artifact)."""
        return {"file": self.file, "status": self.status, "submission_id": self.submission_id,
                "records": self.records, "accepted": self.accepted, "quarantined": self.quarantined,
                "exact_duplicates": self.exact_duplicates, "near_duplicates": self.near_duplicates,
                "reason": self.reason_code or ""}


def summary_rows(results: Sequence[FileIngestResult]) -> list[dict[str, Any]]:
    return [r.summary_row() for r in results]


@dataclass(frozen=True)
class IngestOptions:
    """How to read a provider's files: the format (None: from the name or content), the field mapping
    (None: auto-detect), the limits (None: the defaults) and the near-duplicate parameters (None: link
    exact duplicates only). The edges build it from the settings and the command's options."""

    fmt: FileFormat | str | None = None
    mapping: FieldMapping | None = None
    limits: IngestLimits | None = None
    dedup_params: DedupParams | None = None


def ingest_one_file(factory: sessionmaker[Session], path: str | os.PathLike[str], provider: str,
                    options: IngestOptions | None = None, *, actor: str | None = None) -> FileIngestResult:
    """Ingest ``path`` for ``provider`` in one transaction of its own (retried on transient conflicts).

    Returns the accepted / copy / existing result, or a ``rejected`` one for a refused file (an invalid
    provider name included). ``actor``: who ingests, for the audit trail (default: the OS user).
    """
    opts = options or IngestOptions()
    try:
        report = run_in_transaction(factory, lambda session: ingest_file(
            session, path, provider, fmt=opts.fmt, mapping=opts.mapping, limits=opts.limits,
            dedup_params=opts.dedup_params, actor=actor))
    except MarketplaceError as exc:
        return FileIngestResult.rejected(str(path), exc)
    return FileIngestResult.from_report(str(path), report)
