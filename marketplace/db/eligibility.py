"""Who owns a sample and who may be paid for it: the one home of both rules.

A *first owner* is the sample that was in the market first; every later copy, exact or near, links
to it through ``duplicate_of_id`` and earns nothing. A sample is *payable* when it is a first owner
and its submission was accepted (a ``copy`` submission's samples are all duplicates anyway, but the
status is the rule of record). Both are SQL expressions, so every query that needs the rule puts it
in its ``WHERE`` clause instead of filtering in Python.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_

from marketplace.db.catalog import Sample, Submission, SubmissionStatus

__all__ = ["is_first_owner", "is_payable"]


def is_first_owner() -> ColumnElement[bool]:
    """``Sample`` is the first copy of its text in the market (no duplicate link)."""
    return Sample.duplicate_of_id.is_(None)


def is_payable() -> ColumnElement[bool]:
    """``Sample`` may be paid: a first owner in an accepted submission. The query must join
    ``Submission`` on ``Submission.id == Sample.submission_id``."""
    return and_(is_first_owner(), Submission.status == SubmissionStatus.ACCEPTED)
