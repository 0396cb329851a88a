"""What is in the store: counts for ``marketplace status``, one section per area.

The sections are listed here, in display order: the catalog's (this module) and the ledger's
(:func:`marketplace.ledger.status.ledger_status`). This module depends on the ledger, never the
reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from marketplace.db import Campaign, Provider, QuarantinedRecord, Sample, Submission, SubmissionStatus
from marketplace.db.counting import count_rows
from marketplace.db.eligibility import is_first_owner
from marketplace.ledger.status import ledger_status

__all__ = ["STATUS_SECTIONS", "catalog_status", "collect_status"]

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


STATUS_SECTIONS: dict[str, StatusSection] = {"catalog": catalog_status, "ledger": ledger_status}


def collect_status(session: Session) -> dict[str, dict[str, Any]]:
    """Every section, in :data:`STATUS_SECTIONS` order."""
    return {name: fn(session) for name, fn in STATUS_SECTIONS.items()}
