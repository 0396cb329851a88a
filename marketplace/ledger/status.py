"""The ``ledger`` section of ``marketplace status``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from marketplace.db import JournalEntry, JournalTransaction, LedgerAccount, PricingRun, PricingRunStatus
from marketplace.status import register_status_section

__all__ = ["ledger_status"]


@register_status_section("ledger")
def ledger_status(session: Session) -> dict[str, Any]:
    def count(stmt: Any) -> int:
        return int(session.execute(stmt).scalar_one())

    return {
        "pricing_runs": count(select(func.count()).select_from(PricingRun)),
        "pricing_runs_incomplete": count(
            select(func.count()).select_from(PricingRun).where(PricingRun.status == PricingRunStatus.ALLOCATED)
        ),
        "accounts": count(select(func.count()).select_from(LedgerAccount)),
        "transactions": count(select(func.count()).select_from(JournalTransaction)),
        "entries": count(select(func.count()).select_from(JournalEntry)),
    }
