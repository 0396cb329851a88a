"""Money as integer minor units of one currency. No float ever touches an amount."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from marketplace.errors import ValidationError

__all__ = ["Money", "minor_digits", "parse_amount"]

# ISO 4217 exponents that differ from 2; everything else uses 2 decimal places.
_EXPONENTS = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3}
_CODE = re.compile(r"^[A-Z]{3}$")


def minor_digits(currency: str) -> int:
    """Number of decimal places of ``currency``'s minor unit (2 for EUR/USD, 0 for JPY)."""
    if not _CODE.match(currency):
        raise ValidationError(f"currency {currency!r} is not a three-letter ISO 4217 code such as EUR or USD")
    return _EXPONENTS.get(currency, 2)


@dataclass(frozen=True, order=True)
class Money:
    """An exact amount: ``amount_minor`` integer units of ``currency`` (cents for EUR)."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise ValidationError(f"amount_minor must be an int, got {type(self.amount_minor).__name__}")
        minor_digits(self.currency)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValidationError(f"cannot combine {self.currency} and {other.currency} amounts")

    def to_decimal(self) -> Decimal:
        return Decimal(self.amount_minor).scaleb(-minor_digits(self.currency))

    def __str__(self) -> str:
        digits = minor_digits(self.currency)
        return f"{self.to_decimal():,.{digits}f} {self.currency}"


def parse_amount(text: str, currency: str) -> Money:
    """Parse a major-unit amount such as ``"1000"`` or ``"1000.50"`` exactly into :class:`Money`.

    Refuses more decimal places than the currency has (no silent rounding of money).
    """
    digits = minor_digits(currency)
    try:
        value = Decimal(str(text).replace("_", "").replace(",", ""))
    except InvalidOperation as exc:
        raise ValidationError(f"amount {text!r} is not a number; write it like 1000 or 1000.50") from exc
    if not value.is_finite():
        raise ValidationError(f"amount {text!r} must be finite")
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value(rounding=ROUND_HALF_EVEN):
        raise ValidationError(f"amount {text!r} has more than {digits} decimal places for {currency}")
    return Money(int(minor), currency)
