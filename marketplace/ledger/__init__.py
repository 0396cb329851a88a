"""The double-entry ledger: accounts, idempotent posting, balances, replay and verification."""

from marketplace.ledger.accounts import (
    FEES_CODE,
    AccountRef,
    budget_account,
    ensure_accounts,
    fees_account,
    lock_accounts,
    normal_balance,
    payable_account,
)
from marketplace.ledger.balances import (
    AccountBalance,
    credited_by_submission,
    list_balances,
    provider_payable_balance,
    replay_totals,
)
from marketplace.ledger.fees import fee_minor
from marketplace.ledger.posting import EntryRequest, PostResult, TransactionRequest, post_transactions
from marketplace.ledger.verify import VerifyReport, Violation, verify_ledger

__all__ = [
    "FEES_CODE",
    "AccountBalance",
    "AccountRef",
    "EntryRequest",
    "PostResult",
    "TransactionRequest",
    "VerifyReport",
    "Violation",
    "budget_account",
    "credited_by_submission",
    "ensure_accounts",
    "fee_minor",
    "fees_account",
    "list_balances",
    "lock_accounts",
    "normal_balance",
    "payable_account",
    "post_transactions",
    "provider_payable_balance",
    "replay_totals",
    "verify_ledger",
]
