"""Pricing periods: ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` labels, the one home of their parsing and checks.

These forms sort chronologically as plain strings ("2026-11" < "2026-11-05" < "2026-12"), which is what
statements rely on for opening balances. Years run from ``FIRST_PERIOD_YEAR`` to ``LAST_PERIOD_YEAR``
(:mod:`marketplace.ledger.limits`: the books are sized for them). A campaign has one granularity
(year, month or day), fixed by its first pricing run: a year and a month of it would overlap and pay
one budget twice over the same days (:func:`check_campaign_period`).
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.db import PricingRun
from marketplace.errors import ConflictError, ValidationError
from marketplace.ledger.limits import FIRST_PERIOD_YEAR, LAST_PERIOD_YEAR

__all__ = ["check_campaign_period", "period_granularity", "validate_period"]

_PERIOD = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_GRANULARITY = {4: "year", 7: "month", 10: "day"}
_FORM = {"year": "YYYY", "month": "YYYY-MM", "day": "YYYY-MM-DD"}


def validate_period(period: str) -> str:
    """Return ``period`` unchanged when valid; raise ValidationError saying the accepted forms otherwise."""
    text = str(period).strip()
    ok = bool(_PERIOD.match(text))
    if ok and len(text) >= 7:
        try:
            dt.date.fromisoformat(text if len(text) == 10 else f"{text}-01")
        except ValueError:
            ok = False
    if not ok:
        raise ValidationError(f"period {period!r} is not YYYY, YYYY-MM or YYYY-MM-DD (for example 2026-11)")
    if not FIRST_PERIOD_YEAR <= int(text[:4]) <= LAST_PERIOD_YEAR:
        raise ValidationError(
            f"period {period!r} is outside {FIRST_PERIOD_YEAR}-{LAST_PERIOD_YEAR}; give a period in that range "
            "(for example 2026-11)"
        )
    return text


def period_granularity(period: str) -> str:
    """``"year"``, ``"month"`` or ``"day"`` of a valid period."""
    return _GRANULARITY[len(validate_period(period))]


def check_campaign_period(session: Session, campaign_id: int, period: str) -> str:
    """``period`` validated, and of the granularity of the campaign's earlier pricing runs (ConflictError else)."""
    text = validate_period(period)
    want = period_granularity(text)
    priced = session.scalars(
        select(PricingRun.period).where(PricingRun.campaign_id == campaign_id).distinct().order_by(PricingRun.period)
    ).all()
    other = [p for p in priced if _GRANULARITY.get(len(p)) != want]
    if other:
        have = _GRANULARITY.get(len(other[0]), "another granularity")
        raise ConflictError(
            f"period {text!r} is a {want}, but campaign {campaign_id} is priced by {have} ({', '.join(other[:3])}"
            f"{', ...' if len(other) > 3 else ''}); periods of two granularities overlap and would pay one budget "
            f"twice. Price this campaign by {have} ({_FORM.get(have, 'its granularity')})"
        )
    return text
