"""The double-entry ledger: accounts, idempotent posting, balances, replay and verification.

Importing this package registers the ``ledger`` section of ``marketplace status``.
"""

from marketplace.ledger import status as _status  # noqa: F401  (registers the status section)
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
from marketplace.ledger.balances import AccountBalance, list_balances, provider_payable_balance, replay_totals
from marketplace.ledger.posting import EntryRequest, PostResult, TransactionRequest, post_transactions
from marketplace.ledger.retry import is_retryable, run_in_transaction
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
    "ensure_accounts",
    "fees_account",
    "is_retryable",
    "list_balances",
    "lock_accounts",
    "normal_balance",
    "payable_account",
    "post_transactions",
    "provider_payable_balance",
    "replay_totals",
    "run_in_transaction",
    "verify_ledger",
]
