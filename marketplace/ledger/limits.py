"""The numeric limits of the books: what the stored integer columns can hold, and the periods that may be priced.

Account totals, budgets and allocations are signed 64-bit integers of minor units (``BIGINT``). A
campaign's budget is posted once per period, so the largest budget the books accept is the one that
can be posted for *every* period a campaign may be priced in (one per day from ``FIRST_PERIOD_YEAR`` to
``LAST_PERIOD_YEAR``, the finest granularity) without overflowing an account's total. It is checked
when a campaign is created (:func:`marketplace.campaigns.create_campaign`) and again before pricing
(:func:`marketplace.pricing.runs.create_pricing_run`). The period range itself is enforced by
:func:`marketplace.pricing.period.validate_period`.
"""

from __future__ import annotations

import datetime as dt

from marketplace.errors import ValidationError
from marketplace.money import Money

__all__ = ["FIRST_PERIOD_YEAR", "LAST_PERIOD_YEAR", "MAX_BUDGET_MINOR", "MAX_PERIODS", "MAX_STORED_MINOR",
           "check_budget_minor"]

MAX_STORED_MINOR = 2**63 - 1  # BIGINT
FIRST_PERIOD_YEAR = 2000
LAST_PERIOD_YEAR = 2100
MAX_PERIODS = (dt.date(LAST_PERIOD_YEAR, 12, 31) - dt.date(FIRST_PERIOD_YEAR, 1, 1)).days + 1  # daily periods
MAX_BUDGET_MINOR = MAX_STORED_MINOR // MAX_PERIODS


def check_budget_minor(amount_minor: int, currency: str) -> None:
    """Raise ValidationError when a budget per period is negative or larger than the books can post for every period."""
    if amount_minor < 0:
        raise ValidationError(f"budget must not be negative, got {Money(amount_minor, currency)}")
    if amount_minor > MAX_BUDGET_MINOR:
        raise ValidationError(
            f"budget {Money(amount_minor, currency)} per period is too large: the books can post at most "
            f"{Money(MAX_BUDGET_MINOR, currency)} per period ({MAX_PERIODS} periods of {FIRST_PERIOD_YEAR}-"
            f"{LAST_PERIOD_YEAR} in 64-bit minor units); choose a smaller budget"
        )
