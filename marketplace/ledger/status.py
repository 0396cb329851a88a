"""The ``ledger`` section of ``marketplace status``: pricing runs (and how many are unfinished), accounts,
transactions and entries."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from marketplace.db import JournalEntry, JournalTransaction, LedgerAccount, PricingRun, PricingRunStatus
from marketplace.db.counting import count_rows

__all__ = ["ledger_status"]


def ledger_status(session: Session) -> dict[str, Any]:
    return {
        "pricing_runs": count_rows(session, PricingRun),
        "pricing_runs_incomplete": count_rows(session, PricingRun, PricingRun.status == PricingRunStatus.ALLOCATED),
        "accounts": count_rows(session, LedgerAccount),
        "transactions": count_rows(session, JournalTransaction),
        "entries": count_rows(session, JournalEntry),
    }
