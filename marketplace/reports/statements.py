"""Provider statements: what one provider was credited for one period, and why.

A statement only ever queries rows of its own provider (accounts, transactions, allocations and
samples filtered by ``provider_id``), so another provider's data cannot appear in it; the tests render
one and look for the other's names, texts and ids.

Periods: the opening balance is the provider's payable balance over transactions of earlier periods
(period labels sort chronologically, see marketplace.pricing.period); credits and adjustments are the
period's transactions; closing = opening + credits + adjustments. Transactions without a period
(manual postings) are not part of periodic statements.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from marketplace.campaigns import get_campaign
from marketplace.db import Allocation, ApproximatorVersion, Campaign, Provider, Sample, Submission, utcnow
from marketplace.db.ledger import AccountKind, EntrySide, JournalEntry, JournalTransaction, LedgerAccount, PricingRun
from marketplace.db.lookup import find_by_name_or_id
from marketplace.db.pricing_runs import latest_complete_pricing_runs
from marketplace.db.screening import failed_check_reason, failed_checks
from marketplace.errors import NotFoundError, ValidationError
from marketplace.ledger.balances import provider_payable_balance, signed_amount
from marketplace.pricing.period import validate_period
from marketplace.reports.submissions import SubmissionSummary, copies_explanation, provider_submissions

__all__ = [
    "ProviderStatement",
    "SampleValue",
    "StatementLine",
    "SubmissionValue",
    "allocation_values",
    "build_provider_statement",
    "excerpt",
    "get_provider",
    "latest_statement_period",
    "paid_provider_ids",
    "posted_periods",
    "require_postings",
    "submitting_provider_ids",
]

EXCERPT_CHARS = 160
VALUE_BATCH = 50_000  # allocation values read per round trip


def excerpt(text: str, n: int = EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


@dataclass(frozen=True)
class StatementLine:
    transaction_id: int
    posted_at: dt.datetime
    kind: str  # allocation | adjustment | manual
    campaign: str | None
    submission_id: int | None
    submission_filename: str | None
    amount_minor: int  # + credited to the provider, - debited (a downward revaluation)
    pricing_run_id: int | None
    model_version: str | None  # model_name:version of the approximator behind the pricing run
    label_set_id: int | None
    idempotency_key: str


@dataclass(frozen=True)
class SubmissionValue:
    submission_id: int
    filename: str
    campaign: str
    n_samples: int
    n_paid: int
    value_total: float  # score units
    amount_minor: int  # latest complete allocation (before the marketplace fee)


@dataclass(frozen=True)
class SampleValue:
    sample_id: int
    submission_id: int
    excerpt: str
    score: float
    value: float
    amount_minor: int
    campaign: str = ""


@dataclass(frozen=True)
class ProviderStatement:
    provider_id: int
    provider_name: str
    period: str
    currency: str
    opening_minor: int
    credits_minor: int  # sum of allocation transactions
    adjustments_minor: int  # sum of adjustment (and manual) transactions, signed
    closing_minor: int
    lines: list[StatementLine]
    submissions: list[SubmissionValue]
    top_samples: list[SampleValue]
    bottom_samples: list[SampleValue]
    values: list[float] = field(default_factory=list)  # every eligible sample's value, for the histogram
    balance_history: list[tuple[dt.datetime, int]] = field(default_factory=list)
    generated_at: dt.datetime = field(default_factory=utcnow)
    # Every file the provider submitted, with what was not paid and why (copies, quarantine).
    submitted: list[SubmissionSummary] = field(default_factory=list)
    # Campaign name -> why its run of the period left this provider out (the fine-tuning check).
    checks_failed: dict[str, str] = field(default_factory=dict)

    @property
    def n_already_in_market(self) -> int:
        """Records of this provider whose content someone submitted first: never paid."""
        return sum(s.already_in_market for s in self.submitted)

    @property
    def notes(self) -> list[str]:
        """Plain sentences on what this statement does not pay, and why."""
        out = []
        if self.n_already_in_market:
            out.append(copies_explanation(self.n_already_in_market) + " (the first provider to submit a content "
                       "is its owner; exact and near copies earn nothing)")
        quarantined = sum(s.quarantined for s in self.submitted)
        if quarantined:
            out.append(f"{quarantined} records were quarantined and are not paid "
                       "(`marketplace submissions list` shows each with its reason and line or row)")
        out += [f"campaign {name}: {reason}" for name, reason in sorted(self.checks_failed.items())]
        if not self.lines:
            out.append(f"nothing was posted to you in {self.period}")
        return out


def get_provider(session: Session, name_or_id: str | int) -> Provider:
    """The provider ``name_or_id`` names (see :func:`marketplace.db.lookup.find_by_name_or_id`)."""
    found = find_by_name_or_id(session, Provider, name_or_id)
    if found is None:
        raise NotFoundError(f"provider {name_or_id!r} not found; `marketplace status` lists the providers by name")
    return found


def _currency(session: Session, provider_id: int, currency: str | None) -> str:
    have = sorted(set(session.scalars(select(LedgerAccount.currency).where(
        LedgerAccount.provider_id == provider_id, LedgerAccount.kind == AccountKind.PROVIDER_PAYABLE))))
    if currency is not None:
        return currency
    if len(have) > 1:
        raise ValidationError(f"provider {provider_id} is paid in {', '.join(have)}; pass --currency to choose one")
    return have[0] if have else "EUR"


def _payable_entries(provider_id: int, currency: str, *columns: Any) -> Select[Any]:
    """``columns`` and each provider-payable entry's signed amount (credits positive) of ``provider_id``
    in ``currency``, joined to its transaction, in posting order. Only this provider's rows."""
    return (
        select(*columns, signed_amount(EntrySide.CREDIT))
        .join(JournalEntry, JournalEntry.transaction_id == JournalTransaction.id)
        .join(LedgerAccount, LedgerAccount.id == JournalEntry.account_id)
        .where(LedgerAccount.kind == AccountKind.PROVIDER_PAYABLE, LedgerAccount.provider_id == provider_id,
               LedgerAccount.currency == currency)
        .order_by(JournalTransaction.posted_at, JournalTransaction.id)
    )


def _lines(session: Session, provider_id: int, currency: str, period: str) -> list[StatementLine]:
    stmt = (
        _payable_entries(provider_id, currency, JournalTransaction, Campaign.name, Submission.filename,
                         ApproximatorVersion.model_name, ApproximatorVersion.version, PricingRun.label_set_id)
        .outerjoin(Campaign, Campaign.id == JournalTransaction.campaign_id)
        .outerjoin(Submission, Submission.id == JournalTransaction.submission_id)
        .outerjoin(PricingRun, PricingRun.id == JournalTransaction.pricing_run_id)
        .outerjoin(ApproximatorVersion, ApproximatorVersion.id == PricingRun.approximator_version_id)
        .where(JournalTransaction.period == period)
    )
    return [
        StatementLine(t.id, t.posted_at, t.kind.value, camp, t.submission_id, fname, int(amount), t.pricing_run_id,
                      f"{mname}:{mver}" if mname else None, label_set, t.idempotency_key)
        for t, camp, fname, mname, mver, label_set, amount in session.execute(stmt).all()
    ]


def _history(session: Session, provider_id: int, currency: str, period: str) -> list[tuple[dt.datetime, int]]:
    rows = session.execute(
        _payable_entries(provider_id, currency, JournalTransaction.posted_at).where(JournalTransaction.period <= period)
    ).all()
    out: list[tuple[dt.datetime, int]] = [(rows[0][0], 0)] if rows else []  # start the step plot at zero
    running = 0
    for posted_at, amount in rows:
        running += int(amount)
        out.append((posted_at, running))
    return out


def posted_periods(session: Session, provider_id: int | None = None) -> list[str]:
    """The periods with postings (of ``provider_id``'s payable account, else of anyone), oldest first."""
    stmt = select(JournalTransaction.period).distinct().where(JournalTransaction.period.is_not(None))
    if provider_id is not None:
        stmt = (stmt.join(JournalEntry, JournalEntry.transaction_id == JournalTransaction.id)
                .join(LedgerAccount, LedgerAccount.id == JournalEntry.account_id)
                .where(LedgerAccount.kind == AccountKind.PROVIDER_PAYABLE, LedgerAccount.provider_id == provider_id))
    return sorted(str(p) for p in session.scalars(stmt))  # period labels sort chronologically


def latest_statement_period(session: Session, provider: str | int) -> str:
    """The period a statement shows when none is asked for: the provider's latest period with postings,
    else the latest period anyone was paid in (a provider paid nothing still gets its statement)."""
    prov = get_provider(session, provider)
    periods = posted_periods(session, prov.id) or posted_periods(session)
    if not periods:
        raise NotFoundError("nothing has been priced yet, so there is no statement to show; run "
                            "`marketplace price CAMPAIGN` (or `marketplace demo`) first")
    return periods[-1]


def require_postings(session: Session, provider: str | int, period: str) -> None:
    """Raise NotFoundError listing the periods with postings when ``period`` has none: the provider's own
    periods, or for a provider never paid the market's (a statement of zeros for a period nobody was paid
    in would read as "you earned nothing"). A never-paid provider asking for a priced period passes: its
    statement of zeros explains why."""
    prov = get_provider(session, provider)
    period = validate_period(period)
    own = posted_periods(session, prov.id)
    periods, whose = (own, f"provider {prov.name} has postings") if own else (posted_periods(session),
                                                                             "the market has postings")
    if period not in periods:
        where = f"{whose} in {', '.join(periods)}" if periods else "nothing has been posted yet"
        raise NotFoundError(f"no postings in period {period} for provider {prov.name}; {where} (pass one of them "
                            "with --period, or leave --period out for the latest)")


def allocation_values(session: Session, *where: ColumnElement[bool]) -> list[float]:
    """The ``value`` (score units) of every allocation row matching ``where``, in sample-id order, read in
    batches of ``VALUE_BATCH`` rows (8 bytes of float per row kept; the rows themselves are not)."""
    out: list[float] = []
    stmt = (select(Allocation.value).where(*where).order_by(Allocation.sample_id)
            .execution_options(yield_per=VALUE_BATCH))
    for part in session.execute(stmt).scalars().partitions():
        out.extend(float(v) for v in part)
    return out


def _submission_values(session: Session, mine: tuple[ColumnElement[bool], ...],
                       run_campaign: dict[int, str]) -> list[SubmissionValue]:
    """Per (pricing run, submission) of the provider: samples, paid samples, value and amount, summed in SQL;
    by submission id."""
    rows = session.execute(
        select(Allocation.pricing_run_id, Allocation.submission_id, Submission.filename, func.count(),
               func.sum(case((Allocation.amount_minor > 0, 1), else_=0)), func.sum(Allocation.value),
               func.sum(Allocation.amount_minor))
        .join(Submission, Submission.id == Allocation.submission_id)
        .where(*mine)
        .group_by(Allocation.pricing_run_id, Allocation.submission_id, Submission.filename)
        .order_by(Allocation.submission_id, Allocation.pricing_run_id)
    ).all()
    return [SubmissionValue(int(sub), fname, run_campaign[int(run_id)], int(n), int(n_paid or 0), float(value or 0.0),
                            int(amount or 0))
            for run_id, sub, fname, n, n_paid, value, amount in rows]


def _ranked_samples(session: Session, mine: tuple[ColumnElement[bool], ...], run_campaign: dict[int, str], n: int,
                    *, best: bool) -> list[SampleValue]:
    """The provider's ``n`` highest-scoring samples (``best``; equal scores by ascending sample id), else its
    ``n`` lowest (lowest first; equal scores by descending sample id): by score, as capped values tie."""
    if n <= 0:
        return []
    order = ((Allocation.score.desc(), Allocation.sample_id, Allocation.pricing_run_id) if best else
             (Allocation.score.asc(), Allocation.sample_id.desc(), Allocation.pricing_run_id.desc()))
    rows = session.execute(
        select(Allocation.sample_id, Allocation.submission_id, Allocation.pricing_run_id, Allocation.score,
               Allocation.value, Allocation.amount_minor, Sample.text)
        .join(Sample, Sample.id == Allocation.sample_id)
        .where(*mine).order_by(*order).limit(n)
    ).all()
    return [SampleValue(int(sid), int(sub), excerpt(text), float(score), float(value), int(amount),
                        run_campaign[int(run_id)]) for sid, sub, run_id, score, value, amount, text in rows]


def build_provider_statement(
    session: Session, provider: str | int, period: str | None = None, *, currency: str | None = None,
    n_samples: int = 5,
) -> ProviderStatement:
    """Everything a provider's statement for ``period`` shows, from its own rows only.

    ``period`` None: :func:`latest_statement_period`. A provider with no postings in ``period`` gets a
    statement of zeros that says so, with the reasons (copies, quarantine); a person asking for one period
    by hand is checked first with :func:`require_postings`."""
    prov = get_provider(session, provider)
    period = validate_period(period) if period is not None else latest_statement_period(session, prov.id)
    cur = _currency(session, prov.id, currency)
    opening = provider_payable_balance(session, prov.id, cur, before_period=period)
    lines = _lines(session, prov.id, cur, period)
    credits = sum(ln.amount_minor for ln in lines if ln.kind == "allocation")
    adjustments = sum(ln.amount_minor for ln in lines if ln.kind != "allocation")

    runs = [r for r in latest_complete_pricing_runs(session, period=period) if r.currency == cur]
    run_ids = [r.id for r in runs]
    camp_names: dict[int, str] = {
        int(cid): name for cid, name in session.execute(
            select(Campaign.id, Campaign.name).where(Campaign.id.in_([r.campaign_id for r in runs])))
    }
    run_campaign = {r.id: camp_names.get(r.campaign_id, str(r.campaign_id)) for r in runs}
    mine = (Allocation.pricing_run_id.in_(run_ids), Allocation.provider_id == prov.id)
    submissions = _submission_values(session, mine, run_campaign) if run_ids else []
    top, bottom = (_ranked_samples(session, mine, run_campaign, n_samples, best=b) if run_ids else []
                   for b in (True, False))
    return ProviderStatement(
        provider_id=prov.id, provider_name=prov.name, period=period, currency=cur, opening_minor=opening,
        credits_minor=credits, adjustments_minor=adjustments, closing_minor=opening + credits + adjustments,
        lines=lines, submissions=submissions, top_samples=top, bottom_samples=bottom,
        values=allocation_values(session, *mine) if run_ids else [],
        balance_history=_history(session, prov.id, cur, period),
        submitted=provider_submissions(session, prov.id),
        checks_failed={run_campaign[r.id]: failed_check_reason(failed_checks(r.screening)[prov.id])
                       for r in runs if prov.id in failed_checks(r.screening)},
    )


def submitting_provider_ids(session: Session) -> list[int]:
    """Every provider with at least one submission: each gets a statement, paid or not (a provider whose
    every record was a copy learns why it earned nothing)."""
    return sorted(int(pid) for pid in session.scalars(select(Submission.provider_id).distinct()))


def paid_provider_ids(session: Session, campaign: str | int, period: str) -> list[int]:
    """Providers with at least one allocation in the campaign's latest complete run of ``period``."""
    camp = get_campaign(session, campaign)
    runs = latest_complete_pricing_runs(session, campaign_id=camp.id, period=validate_period(period))
    if not runs:
        return []
    return sorted(set(session.scalars(select(Allocation.provider_id).where(Allocation.pricing_run_id == runs[0].id))))
