"""What happened to a provider's data: per submission the records read, accepted, quarantined and
already in the market; per submission the quarantined records with reason and line or row.

Used by ``marketplace submissions list|show`` and by the statements (their explanation of copies).
Only the provider's own rows are read. A duplicate is shown as "already in the market" and never says
whose sample it matches: the first owner, its submission and its text belong to another provider.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from marketplace.db import Provider, QuarantinedRecord, Sample, Submission
from marketplace.db.catalog import SubmissionStatus
from marketplace.db.eligibility import is_first_owner
from marketplace.errors import NotFoundError

__all__ = [
    "ALREADY_IN_MARKET",
    "DuplicateRecord",
    "QuarantineLine",
    "SubmissionDetail",
    "SubmissionSummary",
    "copies_explanation",
    "provider_submissions",
    "submission_detail",
]

ALREADY_IN_MARKET = "already in the market"


@dataclass(frozen=True)
class SubmissionSummary:
    """One file a provider submitted and what became of its records."""

    submission_id: int
    filename: str
    status: str  # accepted | copy (the same bytes were submitted before)
    submitted_at: dt.datetime
    records: int
    accepted: int
    quarantined: int
    already_in_market: int  # accepted samples whose content someone submitted first: never paid
    payable: int  # first-owner samples of an accepted submission

    @property
    def note(self) -> str:
        """One line on what is not paid and why (empty when every accepted record can be paid)."""
        parts = []
        if self.status == SubmissionStatus.COPY:
            parts.append(f"the same file was already in the market: its {self.records} records are not paid")
        elif self.already_in_market:
            parts.append(copies_explanation(self.already_in_market))
        if self.quarantined:
            parts.append(f"{self.quarantined} records quarantined (see `marketplace submissions show "
                         f"{self.submission_id}`)")
        return "; ".join(parts)


@dataclass(frozen=True)
class QuarantineLine:
    record_index: int
    location: str  # "line 17", "row 3"
    reason_code: str
    detail: str
    excerpt: str | None


@dataclass(frozen=True)
class DuplicateRecord:
    record_index: int
    kind: str  # exact | near
    note: str = ALREADY_IN_MARKET


@dataclass(frozen=True)
class SubmissionDetail:
    provider_name: str
    summary: SubmissionSummary
    quarantined: list[QuarantineLine]
    duplicates: list[DuplicateRecord]


def copies_explanation(n: int) -> str:
    """The one sentence for copies, in statements, the CLI and the buyer report."""
    return f"{n} record{'s were' if n != 1 else ' was'} already in the market and {'are' if n != 1 else 'is'} not paid"


def provider_submissions(session: Session, provider_id: int) -> list[SubmissionSummary]:
    """Every submission of the provider, oldest first (look a name up with
    :func:`marketplace.reports.statements.get_provider`)."""
    counts = {
        int(sid): (int(n_copies or 0), int(n_first or 0))
        for sid, n_copies, n_first in session.execute(
            select(Sample.submission_id,
                   func.sum(case((~is_first_owner(), 1), else_=0)),
                   func.sum(case((is_first_owner(), 1), else_=0)))
            .where(Sample.provider_id == provider_id)
            .group_by(Sample.submission_id)
        )
    }
    out = []
    for sub in session.scalars(select(Submission).where(Submission.provider_id == provider_id)
                               .order_by(Submission.created_at, Submission.id)):
        copies, first = counts.get(sub.id, (0, 0))
        accepted_sub = sub.status == SubmissionStatus.ACCEPTED
        out.append(SubmissionSummary(
            submission_id=sub.id, filename=sub.filename, status=sub.status.value, submitted_at=sub.created_at,
            records=sub.n_records, accepted=sub.n_accepted, quarantined=sub.n_quarantined,
            already_in_market=copies, payable=first if accepted_sub else 0,
        ))
    return out


def submission_detail(session: Session, prov: Provider, submission_id: int) -> SubmissionDetail:
    """One submission of ``prov``: its summary, every quarantined record (reason, line or row, the
    start of the record) and every record already in the market (its position and the kind of match)."""
    summary = next((s for s in provider_submissions(session, prov.id) if s.submission_id == submission_id), None)
    if summary is None:  # also when the submission exists but is another provider's: never say whose
        raise NotFoundError(f"provider {prov.name} has no submission {submission_id}; "
                            f"`marketplace submissions list {prov.name}` lists its submissions")
    quarantined = [
        QuarantineLine(q.record_index, q.location, q.reason_code, q.detail, q.excerpt)
        for q in session.scalars(select(QuarantinedRecord).where(QuarantinedRecord.submission_id == submission_id)
                                 .order_by(QuarantinedRecord.record_index))
    ]
    duplicates = [
        DuplicateRecord(int(idx), kind.value if kind is not None else "exact")
        for idx, kind in session.execute(
            select(Sample.record_index, Sample.duplicate_kind)
            .where(Sample.submission_id == submission_id, Sample.provider_id == prov.id, ~is_first_owner())
            .order_by(Sample.record_index))
    ]
    return SubmissionDetail(prov.name, summary, quarantined, duplicates)
