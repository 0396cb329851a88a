"""The pricing run: latest complete score run → stored allocations → one ledger transaction per submission.

Two core steps, each run by the caller in its own unit of work(s) (the caller owns the session):

1. :func:`create_pricing_run` picks the campaign's *latest complete score run* (highest id with status
   complete; its approximator version is the champion that scored it), reads the scores of eligible
   samples, allocates the budget (:func:`~marketplace.pricing.allocation.allocate_budget`) and stores the
   pricing run with one :class:`~marketplace.db.Allocation` row per eligible sample. The run is unique on
   (campaign, period, score run, policy hash, budget): a second call, concurrent or later, gets the same
   run back (``INSERT ... ON CONFLICT DO NOTHING``), so it is never allocated twice.
2. :func:`post_pricing_batch` posts up to ``max_transactions`` submissions' transactions, keyed
   ``price:{run}:sub:{submission}``. Each posts only the *difference* between the submission's new
   allocation and everything credited before for that campaign and period (revaluation by adjustment;
   zero → nothing). Transactions are computed from the stored allocations and the committed ledger
   *after* the campaign's budget account is locked, so two posters of a campaign are serialised and a
   retry after a crash at any point resumes where the books are. A run that finds a newer run of the
   same period already posting (or complete) marks itself superseded and posts nothing: the latest run
   wins, and an old run resumed late cannot undo a revaluation.

Eligibility: samples with ``duplicate_of_id IS NULL`` whose submission is ``accepted`` (a ``copy``
submission's samples are all duplicates), scored by the chosen run's approximator version in a complete
score run up to the chosen one. Guardrail: a score run whose audit says it failed (``audit["passed"] is
False``, or ``audit["spearman"]`` below the campaign's ``audit_threshold``) stops the payout.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import and_, case, exists, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from marketplace.campaigns import get_campaign
from marketplace.db import (
    AccountKind,
    Allocation,
    ApproximatorVersion,
    Campaign,
    EntrySide,
    JournalEntry,
    JournalTransaction,
    LedgerAccount,
    PricingRun,
    PricingRunStatus,
    RunStatus,
    Sample,
    Score,
    ScoreRun,
    Submission,
    SubmissionStatus,
    TransactionKind,
    is_postgres,
    utcnow,
)
from marketplace.errors import AuditFailedError, NotFoundError, ValidationError
from marketplace.ledger.accounts import budget_account, ensure_accounts, fees_account, lock_accounts, payable_account
from marketplace.ledger.posting import EntryRequest, TransactionRequest, post_transactions
from marketplace.pricing.allocation import AllocationResult, allocate_budget
from marketplace.pricing.period import validate_period
from marketplace.pricing.policy import PricingPolicy, parse_policy

__all__ = [
    "BatchOutcome",
    "EligibleScores",
    "create_pricing_run",
    "latest_complete_score_run",
    "load_eligible_scores",
    "post_pricing_batch",
    "pricing_transaction_key",
]

log = logging.getLogger(__name__)
ALLOCATION_CHUNK = 5000


@dataclass(frozen=True)
class EligibleScores:
    """Scores of eligible samples; all arrays (N,)."""

    sample_ids: np.ndarray
    submission_ids: np.ndarray
    provider_ids: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class BatchOutcome:
    pricing_run_id: int
    n_posted: int  # transactions written by this batch
    n_remaining: int  # submissions still to post after this batch
    done: bool
    superseded_by: int | None = None


def pricing_transaction_key(pricing_run_id: int, submission_id: int) -> str:
    return f"price:{pricing_run_id}:sub:{submission_id}"


def latest_complete_score_run(session: Session, campaign_id: int) -> ScoreRun:
    run = session.scalar(
        select(ScoreRun)
        .where(ScoreRun.campaign_id == campaign_id, ScoreRun.status == RunStatus.COMPLETE)
        .order_by(ScoreRun.id.desc())
        .limit(1)
    )
    if run is None:
        raise NotFoundError(
            f"campaign {campaign_id} has no complete score run; score the pool first (`marketplace approx score`)"
        )
    return run


def _check_audit(campaign: Campaign, score_run: ScoreRun) -> None:
    audit = score_run.audit or {}
    spearman = audit.get("spearman")
    if audit.get("passed") is False or (
        isinstance(spearman, int | float) and float(spearman) < float(campaign.audit_threshold)
    ):
        raise AuditFailedError(
            f"score run {score_run.id} failed its audit (spearman={spearman!r}, threshold "
            f"{campaign.audit_threshold}): payouts are stopped. Label more data, retrain and rescore, then price again"
        )


def load_eligible_scores(session: Session, score_run: ScoreRun) -> EligibleScores:
    """Scores of accepted first-owner samples by the score run's approximator version (complete runs <= it)."""
    runs = select(ScoreRun.id).where(
        ScoreRun.approximator_version_id == score_run.approximator_version_id,
        ScoreRun.status == RunStatus.COMPLETE,
        ScoreRun.id <= score_run.id,
    )
    rows = session.execute(
        select(Score.sample_id, Sample.submission_id, Sample.provider_id, Score.score)
        .join(Sample, Sample.id == Score.sample_id)
        .join(Submission, Submission.id == Sample.submission_id)
        .where(
            Score.approximator_version_id == score_run.approximator_version_id,
            Score.score_run_id.in_(runs),
            Sample.duplicate_of_id.is_(None),
            Submission.status == SubmissionStatus.ACCEPTED,
        )
        .order_by(Score.sample_id)
    ).all()
    if not rows:
        empty = np.zeros(0, np.int64)
        return EligibleScores(empty, empty, empty, np.zeros(0, np.float64))
    sid, sub, prov, sc = zip(*rows, strict=True)
    return EligibleScores(
        np.asarray(sid, np.int64), np.asarray(sub, np.int64), np.asarray(prov, np.int64),
        np.asarray(sc, np.float64),
    )


def _find_run(session: Session, campaign_id: int, period: str, score_run_id: int, policy_hash: str,
              budget_minor: int) -> PricingRun | None:
    return session.scalar(
        select(PricingRun).where(
            PricingRun.campaign_id == campaign_id,
            PricingRun.period == period,
            PricingRun.score_run_id == score_run_id,
            PricingRun.policy_hash == policy_hash,
            PricingRun.budget_minor == budget_minor,
        )
    )


def create_pricing_run(
    session: Session,
    campaign: str | int,
    period: str,
    policy: PricingPolicy | None = None,
    *,
    score_run_id: int | None = None,
) -> tuple[PricingRun, bool]:
    """Get or create the pricing run (and its allocations). Returns (run, created)."""
    period = validate_period(period)
    policy = policy or PricingPolicy()
    camp = get_campaign(session, campaign)
    if score_run_id is None:
        score_run = latest_complete_score_run(session, camp.id)
    else:
        found = session.get(ScoreRun, score_run_id)
        if found is None or found.campaign_id != camp.id:
            raise NotFoundError(f"score run {score_run_id} not found for campaign {camp.name!r}")
        if found.status != RunStatus.COMPLETE:
            raise ValidationError(f"score run {score_run_id} is {found.status.value}; only complete runs are priced")
        score_run = found
    existing = _find_run(session, camp.id, period, score_run.id, policy.policy_hash, camp.budget_minor)
    if existing is not None:
        return existing, False
    _check_audit(camp, score_run)
    version = session.get(ApproximatorVersion, score_run.approximator_version_id)
    if version is None:  # the foreign key makes this impossible; keep a real error anyway
        raise NotFoundError(f"approximator version {score_run.approximator_version_id} of score run {score_run.id}")

    eligible = load_eligible_scores(session, score_run)
    result = allocate_budget(camp.budget_minor, eligible.sample_ids, eligible.scores, eligible.submission_ids,
                             eligible.provider_ids, policy)
    row = {
        "campaign_id": camp.id, "period": period, "score_run_id": score_run.id,
        "approximator_version_id": version.id, "label_set_id": version.label_set_id,
        "policy": parse_policy(policy.model_dump(mode="json")).model_dump(mode="json"),
        "policy_hash": policy.policy_hash, "budget_minor": camp.budget_minor, "currency": camp.currency,
        "cap_value": result.cap_value, "n_eligible": int(result.sample_ids.size),
        "n_paid": int((result.amounts_minor > 0).sum()), "n_submissions": len(result.per_submission),
        "allocated_minor": result.allocated_minor, "unallocated_minor": result.unallocated_minor,
        "status": PricingRunStatus.ALLOCATED, "created_at": utcnow(),
    }
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    stmt = (
        dialect_insert(PricingRun)
        .values(**row)
        .on_conflict_do_nothing(
            index_elements=["campaign_id", "period", "score_run_id", "policy_hash", "budget_minor"]
        )
        .returning(PricingRun.id)
    )
    run_id = session.execute(stmt).scalar_one_or_none()
    if run_id is None:  # a concurrent caller created it first and has committed
        existing = _find_run(session, camp.id, period, score_run.id, policy.policy_hash, camp.budget_minor)
        if existing is None:
            raise AssertionError("pricing run vanished after a unique conflict")
        return existing, False
    _store_allocations(session, run_id, result)
    run = session.get(PricingRun, run_id)
    assert run is not None
    log.info("pricing run %d: campaign %s period %s, score run %d, %d eligible samples, %d of %d minor units "
             "allocated", run_id, camp.name, period, score_run.id, run.n_eligible, run.allocated_minor,
             run.budget_minor)
    return run, True


def _store_allocations(session: Session, run_id: int, result: AllocationResult) -> None:
    cols = zip(result.sample_ids.tolist(), result.submission_ids.tolist(), result.provider_ids.tolist(),
               result.scores.tolist(), result.values.tolist(), result.amounts_minor.tolist(), strict=True)
    rows = [
        {"pricing_run_id": run_id, "sample_id": s, "submission_id": sub, "provider_id": p, "score": sc,
         "value": v, "amount_minor": a}
        for s, sub, p, sc, v, a in cols
    ]
    for start in range(0, len(rows), ALLOCATION_CHUNK):
        session.execute(insert(Allocation), rows[start : start + ALLOCATION_CHUNK])


def _superseding_run(session: Session, run: PricingRun) -> int | None:
    has_txn = exists().where(JournalTransaction.pricing_run_id == PricingRun.id)
    return session.scalar(
        select(func.min(PricingRun.id)).where(
            PricingRun.campaign_id == run.campaign_id,
            PricingRun.period == run.period,
            PricingRun.id > run.id,
            (PricingRun.status == PricingRunStatus.COMPLETE) | has_txn,
        )
    )


def credited_by_submission(
    session: Session, campaign_id: int, period: str, *, exclude_run_id: int | None = None
) -> dict[int, dict[AccountKind, int]]:
    """Net amounts per submission and account kind for a campaign's period, each on the kind's normal side.

    ``{submission_id: {CAMPAIGN_BUDGET: paid out, PROVIDER_PAYABLE: net credited, MARKETPLACE_FEES: fees}}``.
    """
    signed = case((JournalEntry.side == EntrySide.DEBIT, JournalEntry.amount_minor), else_=-JournalEntry.amount_minor)
    cond = [JournalTransaction.campaign_id == campaign_id, JournalTransaction.period == period,
            JournalTransaction.submission_id.is_not(None)]
    if exclude_run_id is not None:
        cond.append(
            (JournalTransaction.pricing_run_id.is_(None)) | (JournalTransaction.pricing_run_id != exclude_run_id)
        )
    rows = session.execute(
        select(JournalTransaction.submission_id, LedgerAccount.kind, func.sum(signed))
        .join(JournalEntry, JournalEntry.transaction_id == JournalTransaction.id)
        .join(LedgerAccount, LedgerAccount.id == JournalEntry.account_id)
        .where(and_(*cond))
        .group_by(JournalTransaction.submission_id, LedgerAccount.kind)
    ).all()
    out: dict[int, dict[AccountKind, int]] = defaultdict(dict)
    for sub_id, kind, debit_minus_credit in rows:
        kind = AccountKind(kind)
        amount = int(debit_minus_credit)
        out[int(sub_id)][kind] = amount if kind is AccountKind.CAMPAIGN_BUDGET else -amount
    return dict(out)


def _targets(session: Session, run_id: int) -> dict[int, tuple[int, int]]:
    rows = session.execute(
        select(Allocation.submission_id, Allocation.provider_id, func.sum(Allocation.amount_minor))
        .where(Allocation.pricing_run_id == run_id)
        .group_by(Allocation.submission_id, Allocation.provider_id)
    ).all()
    return {int(sub): (int(prov), int(total)) for sub, prov, total in rows}


def _legs(camp_id: int, prov_id: int, currency: str, d_total: int, d_net: int, d_fee: int) -> tuple[EntryRequest, ...]:
    """Signed movements (credit-positive) -> entries; budget -d_total + payable d_net + fees d_fee == 0."""
    legs = []
    for account, signed in ((budget_account(camp_id, currency), -d_total),
                            (payable_account(prov_id, currency), d_net),
                            (fees_account(currency), d_fee)):
        if signed:
            legs.append(EntryRequest(account, EntrySide.CREDIT if signed > 0 else EntrySide.DEBIT, abs(signed)))
    return tuple(legs)


def post_pricing_batch(session: Session, pricing_run_id: int, max_transactions: int = 500) -> BatchOutcome:
    """Post the next ``max_transactions`` submission transactions of a pricing run (adjustments vs. the books)."""
    if max_transactions < 1:
        raise ValidationError(f"max_transactions must be >= 1, got {max_transactions}")
    run = session.get(PricingRun, pricing_run_id)
    if run is None:
        raise NotFoundError(f"pricing run {pricing_run_id} not found; create it with `marketplace price`")
    if run.status is not PricingRunStatus.ALLOCATED:
        return BatchOutcome(run.id, 0, 0, done=True)
    currency = run.currency
    fixed = ensure_accounts(session, [budget_account(run.campaign_id, currency), fees_account(currency)])
    lock_accounts(session, [fixed[budget_account(run.campaign_id, currency)]])  # serialises the campaign
    session.refresh(run)
    if run.status is not PricingRunStatus.ALLOCATED:
        return BatchOutcome(run.id, 0, 0, done=True)
    newer = _superseding_run(session, run)
    if newer is not None:
        run.status = PricingRunStatus.SUPERSEDED
        run.finished_at = utcnow()
        log.warning("pricing run %d superseded by run %d of the same period; it posts nothing more", run.id, newer)
        return BatchOutcome(run.id, 0, 0, done=True, superseded_by=newer)

    policy = parse_policy(run.policy)
    targets = _targets(session, run.id)
    before = credited_by_submission(session, run.campaign_id, run.period, exclude_run_id=run.id)
    posted = set(
        session.scalars(
            select(JournalTransaction.submission_id).where(JournalTransaction.pricing_run_id == run.id)
        ).all()
    )
    candidates = sorted((set(targets) | set(before)) - posted)
    missing_prov = [s for s in candidates if s not in targets]
    prov_of = {sub: prov for sub, (prov, _) in targets.items()}
    if missing_prov:
        for sub_id, prov_id in session.execute(
                select(Submission.id, Submission.provider_id).where(Submission.id.in_(missing_prov))):
            prov_of[int(sub_id)] = int(prov_id)

    requests: list[TransactionRequest] = []
    n_pending = 0
    for sub in candidates:
        alloc = targets.get(sub, (0, 0))[1]
        fee = policy.fee_minor(alloc)
        prev = before.get(sub, {})
        d_total = alloc - prev.get(AccountKind.CAMPAIGN_BUDGET, 0)
        d_fee = fee - prev.get(AccountKind.MARKETPLACE_FEES, 0)
        d_net = (alloc - fee) - prev.get(AccountKind.PROVIDER_PAYABLE, 0)
        if d_total == 0 and d_fee == 0 and d_net == 0:
            continue
        n_pending += 1
        if len(requests) >= max_transactions:
            continue
        prov = int(prov_of[sub])
        kind = TransactionKind.ADJUSTMENT if prev else TransactionKind.ALLOCATION
        requests.append(TransactionRequest(
            idempotency_key=pricing_transaction_key(run.id, sub), currency=currency,
            entries=_legs(run.campaign_id, prov, currency, d_total, d_net, d_fee), kind=kind,
            campaign_id=run.campaign_id, period=run.period, pricing_run_id=run.id, submission_id=sub,
            provider_id=prov, memo=f"pricing run {run.id}, period {run.period}: {kind.value}",
        ))
    results = post_transactions(session, requests)
    n_new = sum(r.created for r in results)
    remaining = n_pending - len(requests)
    if remaining == 0:
        run.status = PricingRunStatus.COMPLETE
        run.finished_at = utcnow()
    log.info("pricing run %d: posted %d transaction(s), %d submission(s) left", run.id, n_new, remaining)
    return BatchOutcome(run.id, n_new, remaining, done=remaining == 0)
