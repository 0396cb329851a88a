"""Pricing periods: ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` labels.

These forms sort chronologically as plain strings ("2026-11" < "2026-11-05" < "2026-12"), which is what
statements rely on for opening balances. Use one granularity per campaign.
"""

from __future__ import annotations

import datetime as dt
import re

from marketplace.errors import ValidationError

__all__ = ["validate_period"]

_PERIOD = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


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
    return text
