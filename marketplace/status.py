"""What is in the store: counts for ``marketplace status``, one section per area, and the providers and
campaigns by name.

The sections are listed here, in display order: the catalog's (this module) and the ledger's
(:func:`marketplace.ledger.status.ledger_status`). This module depends on the ledger, never the
reverse. :func:`account_names` gives ledger accounts the names of their owners, for every listing
that shows accounts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from marketplace.db import (
    Campaign,
    LedgerAccount,
    Provider,
    QuarantinedRecord,
    Sample,
    Submission,
    SubmissionStatus,
)
from marketplace.db.counting import count_rows
from marketplace.db.eligibility import is_first_owner
from marketplace.ledger.balances import provider_payable_balance
from marketplace.ledger.status import ledger_status
from marketplace.money import Money

__all__ = ["STATUS_SECTIONS", "account_names", "campaign_rows", "catalog_status", "collect_status",
           "provider_rows"]

StatusSection = Callable[[Session], dict[str, Any]]


def catalog_status(session: Session) -> dict[str, Any]:
    """Providers, submissions (copies among them), samples (first owners and duplicates), quarantine, campaigns."""
    return {
        "providers": count_rows(session, Provider),
        "submissions": count_rows(session, Submission),
        "copies": count_rows(session, Submission, Submission.status == SubmissionStatus.COPY),
        "samples": count_rows(session, Sample),
        "first_owner_samples": count_rows(session, Sample, is_first_owner()),
        "duplicates": count_rows(session, Sample, ~is_first_owner()),
        "quarantined_records": count_rows(session, QuarantinedRecord),
        "campaigns": count_rows(session, Campaign),
    }


def provider_rows(session: Session) -> list[dict[str, Any]]:
    """Every provider by name: id, submissions, samples, samples already in the market, and what it is owed
    (its payable balance in each currency it is paid in)."""
    samples = {
        int(pid): (int(n), int(dups or 0))
        for pid, n, dups in session.execute(
            select(Sample.provider_id, func.count(), func.sum(case((~is_first_owner(), 1), else_=0)))
            .group_by(Sample.provider_id))
    }
    submissions = {int(pid): int(n) for pid, n in session.execute(
        select(Submission.provider_id, func.count()).group_by(Submission.provider_id))}
    currencies: dict[int, list[str]] = {}
    for pid, cur in session.execute(select(LedgerAccount.provider_id, LedgerAccount.currency)
                                    .where(LedgerAccount.provider_id.is_not(None)).distinct()):
        currencies.setdefault(int(pid), []).append(cur)
    rows = []
    for prov in session.scalars(select(Provider).order_by(Provider.id)):
        n, dups = samples.get(prov.id, (0, 0))
        owed = [str(Money(provider_payable_balance(session, prov.id, cur), cur))
                for cur in sorted(currencies.get(prov.id, []))]
        rows.append({"id": prov.id, "name": prov.name, "submissions": int(submissions.get(prov.id, 0)),
                     "samples": n, "already_in_market": dups, "owed": ", ".join(owed) or "nothing"})
    return rows


def campaign_rows(session: Session) -> list[dict[str, Any]]:
    """Every campaign by name: id, budget per period and audit threshold."""
    return [{"id": c.id, "name": c.name, "budget": str(Money(c.budget_minor, c.currency)),
             "audit_threshold": c.audit_threshold}
            for c in session.scalars(select(Campaign).order_by(Campaign.id))]


def account_names(session: Session) -> dict[int, str]:
    """Ledger account id → the name of what it belongs to ("provider alpha-data", "campaign demo",
    "marketplace"), so a listing never shows a bare ``provider:1:payable``."""
    rows = session.execute(
        select(LedgerAccount.id, Provider.name, Campaign.name)
        .outerjoin(Provider, Provider.id == LedgerAccount.provider_id)
        .outerjoin(Campaign, Campaign.id == LedgerAccount.campaign_id))
    return {int(aid): (f"provider {prov}" if prov is not None else f"campaign {camp}" if camp is not None
                       else "marketplace") for aid, prov, camp in rows}


STATUS_SECTIONS: dict[str, StatusSection] = {"catalog": catalog_status, "ledger": ledger_status}


def collect_status(session: Session) -> dict[str, dict[str, Any]]:
    """Every section, in :data:`STATUS_SECTIONS` order."""
    return {name: fn(session) for name, fn in STATUS_SECTIONS.items()}
