from __future__ import annotations

import pytest

from marketplace.errors import ValidationError
from marketplace.money import Money, minor_digits, parse_amount


def test_parse_exact_minor_units() -> None:
    assert parse_amount("1000.50", "EUR") == Money(100050, "EUR")
    assert parse_amount("1_000", "USD") == Money(100000, "USD")
    assert parse_amount("500", "JPY") == Money(500, "JPY")
    assert minor_digits("KWD") == 3


@pytest.mark.parametrize(("text", "currency"), [("1.005", "EUR"), ("abc", "EUR"), ("nan", "EUR"), ("1.5", "JPY")])
def test_parse_refuses_inexact_or_invalid(text: str, currency: str) -> None:
    with pytest.raises(ValidationError):
        parse_amount(text, currency)


def test_currency_mixing_refused() -> None:
    with pytest.raises(ValidationError, match="cannot combine"):
        Money(1, "EUR") + Money(1, "USD")
    with pytest.raises(ValidationError):
        Money(1.5, "EUR")  # type: ignore[arg-type]
