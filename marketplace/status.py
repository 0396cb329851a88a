"""What is in the store: counts for ``marketplace status``.

Each area contributes a section through :data:`STATUS_SECTIONS` (catalog here; the ledger module
adds its totals), so this file never has to know every table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from marketplace.db import Campaign, Provider, QuarantinedRecord, Sample, Submission, SubmissionStatus

__all__ = ["STATUS_SECTIONS", "collect_status", "register_status_section"]

StatusSection = Callable[[Session], dict[str, Any]]
STATUS_SECTIONS: dict[str, StatusSection] = {}


def register_status_section(name: str) -> Callable[[StatusSection], StatusSection]:
    def deco(fn: StatusSection) -> StatusSection:
        STATUS_SECTIONS[name] = fn
        return fn

    return deco


def _count(session: Session, stmt: Any) -> int:
    return int(session.execute(stmt).scalar_one())


@register_status_section("catalog")
def catalog_status(session: Session) -> dict[str, Any]:
    return {
        "providers": _count(session, select(func.count()).select_from(Provider)),
        "submissions": _count(session, select(func.count()).select_from(Submission)),
        "copies": _count(
            session, select(func.count()).select_from(Submission).where(Submission.status == SubmissionStatus.COPY)
        ),
        "samples": _count(session, select(func.count()).select_from(Sample)),
        "first_owner_samples": _count(
            session, select(func.count()).select_from(Sample).where(Sample.duplicate_of_id.is_(None))
        ),
        "duplicates": _count(
            session, select(func.count()).select_from(Sample).where(Sample.duplicate_of_id.is_not(None))
        ),
        "quarantined_records": _count(session, select(func.count()).select_from(QuarantinedRecord)),
        "campaigns": _count(session, select(func.count()).select_from(Campaign)),
    }


def collect_status(session: Session) -> dict[str, dict[str, Any]]:
    """Every registered section, in registration order."""
    import marketplace.ledger  # noqa: F401  (registers the ledger section)

    return {name: fn(session) for name, fn in STATUS_SECTIONS.items()}
