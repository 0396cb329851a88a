"""Posting a pricing run to the ledger: one transaction per submission, by adjustment, batch by batch.

:func:`post_pricing_batch` posts up to ``max_transactions`` submissions' transactions, keyed
``price:{run}:sub:{submission}``. Each posts only the *difference* between the submission's new
allocation (split into provider payable and marketplace fee, :mod:`marketplace.ledger.fees`) and
everything credited before for that campaign and period (revaluation by adjustment; zero → nothing).
Transactions are computed from the stored allocations and the committed ledger *after* the campaign's
budget account is locked, so two posters of a campaign are serialised and a retry after a crash at any
point resumes where the books are. A run that finds a newer run of the same period already posting (or
complete) marks itself superseded and posts nothing: the latest run wins, and an old run resumed late
cannot undo a revaluation. The caller owns the session; nothing here commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from marketplace.db import Allocation, JournalTransaction, PricingRun, PricingRunStatus, Submission, utcnow
from marketplace.db.ledger import AccountKind, EntrySide, TransactionKind
from marketplace.errors import NotFoundError, ValidationError
from marketplace.ledger.accounts import budget_account, ensure_accounts, fees_account, lock_accounts, payable_account
from marketplace.ledger.balances import credited_by_submission
from marketplace.ledger.fees import fee_minor, stored_fee_bps
from marketplace.ledger.posting import EntryRequest, TransactionRequest, post_transactions

__all__ = ["BatchOutcome", "post_pricing_batch", "pricing_transaction_key"]

log = logging.getLogger(__name__)


def pricing_transaction_key(pricing_run_id: int, submission_id: int) -> str:
    """The idempotency key of a submission's transaction in a pricing run (one per run and submission)."""
    return f"price:{pricing_run_id}:sub:{submission_id}"


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch did: transactions written now, submissions still to post, and whether the run is done."""

    pricing_run_id: int
    n_posted: int
    n_remaining: int
    done: bool
    superseded_by: int | None = None


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


def _targets(session: Session, run_id: int) -> dict[int, tuple[int, int]]:
    """submission id -> (provider id, allocated minor units) of the run."""
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


def _lock_for_posting(session: Session, run: PricingRun) -> BatchOutcome | None:
    """Serialise the campaign's posters; a finished or superseded run gets its final outcome instead."""
    if run.status is not PricingRunStatus.ALLOCATED:
        return BatchOutcome(run.id, 0, 0, done=True)
    budget, fees = budget_account(run.campaign_id, run.currency), fees_account(run.currency)
    lock_accounts(session, [ensure_accounts(session, [budget, fees])[budget]])
    session.refresh(run)
    if run.status is not PricingRunStatus.ALLOCATED:
        return BatchOutcome(run.id, 0, 0, done=True)
    newer = _superseding_run(session, run)
    if newer is None:
        return None
    run.status = PricingRunStatus.SUPERSEDED
    run.finished_at = utcnow()
    log.warning("pricing run %d superseded by run %d of the same period; it posts nothing more", run.id, newer)
    return BatchOutcome(run.id, 0, 0, done=True, superseded_by=newer)


@dataclass(frozen=True)
class _Move:
    """A submission's difference to the books: budget paid out, provider net and fee (minor units, signed)."""

    submission_id: int
    provider_id: int
    d_total: int
    d_net: int
    d_fee: int
    kind: TransactionKind

    def request(self, run: PricingRun) -> TransactionRequest:
        return TransactionRequest(
            idempotency_key=pricing_transaction_key(run.id, self.submission_id), currency=run.currency,
            entries=_legs(run.campaign_id, self.provider_id, run.currency, self.d_total, self.d_net, self.d_fee),
            kind=self.kind, campaign_id=run.campaign_id, period=run.period, pricing_run_id=run.id,
            submission_id=self.submission_id, provider_id=self.provider_id,
            memo=f"pricing run {run.id}, period {run.period}: {self.kind.value}",
        )


def _pending(session: Session, run: PricingRun) -> list[_Move]:
    """Every submission movement the run still has to post (its differences to the books), by submission id."""
    fee_bps = stored_fee_bps(run.policy)
    targets = _targets(session, run.id)
    before = credited_by_submission(session, run.campaign_id, run.period, exclude_run_id=run.id)
    posted = set(session.scalars(
        select(JournalTransaction.submission_id).where(JournalTransaction.pricing_run_id == run.id)
    ))
    candidates = sorted((set(targets) | set(before)) - posted)
    prov_of = {sub: prov for sub, (prov, _) in targets.items()}
    unpaid_now = [s for s in candidates if s not in targets]
    if unpaid_now:
        prov_of.update(session.execute(select(Submission.id, Submission.provider_id).where(
            Submission.id.in_(unpaid_now))).tuples())
    moves = []
    for sub in candidates:
        alloc = targets.get(sub, (0, 0))[1]
        fee = fee_minor(alloc, fee_bps)
        prev = before.get(sub, {})
        move = _Move(sub, int(prov_of[sub]), alloc - prev.get(AccountKind.CAMPAIGN_BUDGET, 0),
                     (alloc - fee) - prev.get(AccountKind.PROVIDER_PAYABLE, 0),
                     fee - prev.get(AccountKind.MARKETPLACE_FEES, 0),
                     TransactionKind.ADJUSTMENT if prev else TransactionKind.ALLOCATION)
        if move.d_total or move.d_net or move.d_fee:
            moves.append(move)
    return moves


def post_pricing_batch(session: Session, pricing_run_id: int, max_transactions: int = 500) -> BatchOutcome:
    """Post the next ``max_transactions`` submission transactions of a pricing run (adjustments vs. the books)."""
    if max_transactions < 1:
        raise ValidationError(f"max_transactions must be >= 1, got {max_transactions}")
    run = session.get(PricingRun, pricing_run_id)
    if run is None:
        raise NotFoundError(f"pricing run {pricing_run_id} not found; create it with `marketplace price`")
    final = _lock_for_posting(session, run)
    if final is not None:
        return final
    pending = _pending(session, run)
    results = post_transactions(session, [m.request(run) for m in pending[:max_transactions]])
    n_new = sum(r.created for r in results)
    remaining = max(len(pending) - max_transactions, 0)
    if remaining == 0:
        run.status = PricingRunStatus.COMPLETE
        run.finished_at = utcnow()
    log.info("pricing run %d: posted %d transaction(s), %d submission(s) left", run.id, n_new, remaining)
    return BatchOutcome(run.id, n_new, remaining, done=remaining == 0)
