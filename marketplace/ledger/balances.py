"""Balances: stored totals, a replay of the journal, per-provider and per-submission views.

The SQL building blocks :func:`signed_amount` and :func:`side_total` are shared by every query that
sums entries (here, ``ledger verify`` and the provider statements).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from marketplace.db import AccountKind, EntrySide, JournalEntry, JournalTransaction, LedgerAccount
from marketplace.ledger.accounts import normal_balance

__all__ = [
    "AccountBalance",
    "credited_by_submission",
    "list_balances",
    "provider_payable_balance",
    "replay_totals",
    "side_total",
    "signed_amount",
    "stored_totals",
]


def signed_amount(positive: EntrySide) -> Any:
    """An entry's ``amount_minor``, positive on the ``positive`` side and negative on the other (SQL)."""
    return case((JournalEntry.side == positive, JournalEntry.amount_minor), else_=-JournalEntry.amount_minor)


def side_total(side: EntrySide) -> Any:
    """The sum of the ``side`` amounts of the grouped entries, 0 when there are none (SQL)."""
    return func.coalesce(func.sum(case((JournalEntry.side == side, JournalEntry.amount_minor), else_=0)), 0)


@dataclass(frozen=True)
class AccountBalance:
    account_id: int
    code: str
    currency: str
    kind: str
    debits_minor: int
    credits_minor: int
    balance_minor: int  # on the account's normal side


def stored_totals(session: Session) -> dict[int, tuple[int, int]]:
    """account id -> (debits, credits) as stored on ``ledger_accounts``."""
    rows = session.execute(select(LedgerAccount.id, LedgerAccount.debits_minor, LedgerAccount.credits_minor))
    return {int(a): (int(d), int(c)) for a, d, c in rows}


def replay_totals(session: Session) -> dict[int, tuple[int, int]]:
    """account id -> (debits, credits) recomputed from every journal entry (accounts without entries: 0, 0)."""
    rows = session.execute(
        select(LedgerAccount.id, side_total(EntrySide.DEBIT), side_total(EntrySide.CREDIT))
        .outerjoin(JournalEntry, JournalEntry.account_id == LedgerAccount.id)
        .group_by(LedgerAccount.id)
    )
    return {int(a): (int(d), int(c)) for a, d, c in rows}


def list_balances(session: Session) -> list[AccountBalance]:
    rows = session.scalars(select(LedgerAccount).order_by(LedgerAccount.code, LedgerAccount.currency)).all()
    return [
        AccountBalance(a.id, a.code, a.currency, a.kind.value, a.debits_minor, a.credits_minor,
                       normal_balance(a.kind, a.debits_minor, a.credits_minor))
        for a in rows
    ]


def provider_payable_balance(
    session: Session, provider_id: int, currency: str, *, before_period: str | None = None,
    through_period: str | None = None,
) -> int:
    """What the marketplace owes ``provider_id`` in ``currency`` (credits - debits), optionally limited to
    transactions whose period sorts before ``before_period`` or at/before ``through_period``."""
    stmt = (
        select(func.coalesce(func.sum(signed_amount(EntrySide.CREDIT)), 0))
        .join(LedgerAccount, LedgerAccount.id == JournalEntry.account_id)
        .join(JournalTransaction, JournalTransaction.id == JournalEntry.transaction_id)
        .where(LedgerAccount.kind == AccountKind.PROVIDER_PAYABLE, LedgerAccount.provider_id == provider_id,
               LedgerAccount.currency == currency)
    )
    if before_period is not None:
        stmt = stmt.where(JournalTransaction.period < before_period)
    if through_period is not None:
        stmt = stmt.where(JournalTransaction.period <= through_period)
    return int(session.execute(stmt).scalar_one())


def credited_by_submission(
    session: Session, campaign_id: int, period: str, *, exclude_run_id: int | None = None
) -> dict[int, dict[AccountKind, int]]:
    """Net amounts per submission and account kind for a campaign's period, each on the kind's normal side.

    ``{submission_id: {CAMPAIGN_BUDGET: paid out, PROVIDER_PAYABLE: net credited, MARKETPLACE_FEES: fees}}``.
    Pricing posts the difference to it; ``ledger verify`` compares it with the latest complete run.
    """
    cond = [JournalTransaction.campaign_id == campaign_id, JournalTransaction.period == period,
            JournalTransaction.submission_id.is_not(None)]
    if exclude_run_id is not None:
        cond.append(
            (JournalTransaction.pricing_run_id.is_(None)) | (JournalTransaction.pricing_run_id != exclude_run_id)
        )
    rows = session.execute(
        select(JournalTransaction.submission_id, LedgerAccount.kind, func.sum(signed_amount(EntrySide.DEBIT)))
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
