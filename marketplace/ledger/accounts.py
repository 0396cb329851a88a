"""Ledger accounts: codes, kinds, normal sides, and get-or-create that is safe under concurrency.

Codes: ``campaign:{id}:budget`` (debit-normal: what the campaign has paid out of its budget),
``provider:{id}:payable`` (credit-normal: what the marketplace owes the provider) and
``marketplace:fees`` (credit-normal). An account is unique by (code, currency).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from marketplace.db import AccountKind, EntrySide, LedgerAccount, is_postgres
from marketplace.db.engine import insert_on_conflict_do_nothing
from marketplace.money import minor_digits

__all__ = [
    "FEES_CODE",
    "AccountRef",
    "budget_account",
    "ensure_accounts",
    "fees_account",
    "lock_accounts",
    "normal_balance",
    "normal_side",
    "payable_account",
]

FEES_CODE = "marketplace:fees"
_NORMAL_SIDE = {
    AccountKind.CAMPAIGN_BUDGET: EntrySide.DEBIT,
    AccountKind.PROVIDER_PAYABLE: EntrySide.CREDIT,
    AccountKind.MARKETPLACE_FEES: EntrySide.CREDIT,
    AccountKind.OTHER: EntrySide.DEBIT,
}


@dataclass(frozen=True, order=True)
class AccountRef:
    """Names an account; :func:`ensure_accounts` turns refs into ids."""

    code: str
    currency: str
    kind: AccountKind
    campaign_id: int | None = None
    provider_id: int | None = None

    def __post_init__(self) -> None:
        minor_digits(self.currency)  # validates the ISO code


def budget_account(campaign_id: int, currency: str) -> AccountRef:
    return AccountRef(f"campaign:{campaign_id}:budget", currency, AccountKind.CAMPAIGN_BUDGET, campaign_id=campaign_id)


def payable_account(provider_id: int, currency: str) -> AccountRef:
    return AccountRef(f"provider:{provider_id}:payable", currency, AccountKind.PROVIDER_PAYABLE,
                      provider_id=provider_id)


def fees_account(currency: str) -> AccountRef:
    return AccountRef(FEES_CODE, currency, AccountKind.MARKETPLACE_FEES)


def normal_side(kind: AccountKind) -> EntrySide:
    return _NORMAL_SIDE[kind]


def normal_balance(kind: AccountKind, debits_minor: int, credits_minor: int) -> int:
    """Balance on the account's normal side (a provider payable's credits minus debits, etc.)."""
    if normal_side(kind) is EntrySide.DEBIT:
        return debits_minor - credits_minor
    return credits_minor - debits_minor


def ensure_accounts(session: Session, refs: Iterable[AccountRef]) -> dict[AccountRef, int]:
    """Ids of ``refs``, creating missing accounts. ``INSERT ... ON CONFLICT DO NOTHING`` makes a race harmless."""
    unique = sorted(set(refs))
    if not unique:
        return {}
    keys = [(r.code, r.currency) for r in unique]
    found = _lookup(session, keys)
    missing = [r for r in unique if (r.code, r.currency) not in found]
    if missing:
        rows = [
            {"code": r.code, "currency": r.currency, "kind": r.kind, "campaign_id": r.campaign_id,
             "provider_id": r.provider_id, "debits_minor": 0, "credits_minor": 0}
            for r in missing
        ]
        session.execute(insert_on_conflict_do_nothing(session, LedgerAccount, ["code", "currency"]), rows)
        found.update(_lookup(session, [(r.code, r.currency) for r in missing]))
    return {r: found[(r.code, r.currency)] for r in unique}


def _lookup(session: Session, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = session.execute(
            select(LedgerAccount.code, LedgerAccount.currency, LedgerAccount.id).where(
                tuple_(LedgerAccount.code, LedgerAccount.currency).in_(chunk)
            )
        )
        out.update({(code, cur): aid for code, cur, aid in rows})
    return out


def lock_accounts(session: Session, account_ids: Iterable[int]) -> None:
    """PostgreSQL: ``SELECT ... FOR UPDATE`` the rows in ascending id order (a fixed order: no lock cycles).

    SQLite needs nothing: ``BEGIN IMMEDIATE`` already holds the database write lock.
    """
    ids = sorted(set(account_ids))
    if not ids or not is_postgres(session):
        return
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        session.execute(
            select(LedgerAccount.id).where(LedgerAccount.id.in_(chunk)).order_by(LedgerAccount.id).with_for_update()
        ).all()
