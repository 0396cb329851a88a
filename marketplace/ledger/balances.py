"""Balances: stored totals, a replay of the journal, and per-provider views for statements."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from marketplace.db import AccountKind, EntrySide, JournalEntry, JournalTransaction, LedgerAccount
from marketplace.ledger.accounts import normal_balance

__all__ = ["AccountBalance", "list_balances", "provider_payable_balance", "replay_totals", "stored_totals"]


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
    debit = func.coalesce(func.sum(case((JournalEntry.side == EntrySide.DEBIT, JournalEntry.amount_minor),
                                        else_=0)), 0)
    credit = func.coalesce(func.sum(case((JournalEntry.side == EntrySide.CREDIT, JournalEntry.amount_minor),
                                         else_=0)), 0)
    rows = session.execute(
        select(LedgerAccount.id, debit, credit)
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
    signed = case((JournalEntry.side == EntrySide.CREDIT, JournalEntry.amount_minor), else_=-JournalEntry.amount_minor)
    stmt = (
        select(func.coalesce(func.sum(signed), 0))
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
