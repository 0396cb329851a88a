"""The marketplace fee on an allocation: the one home of the fee rule.

A submission's allocation ``A`` (minor units) is split on posting into the provider's net credit
``A - fee`` and the marketplace's ``fee = floor(A * fee_bps / 10000)`` (rounded in the provider's
favour). Pricing posts that split and ``ledger verify`` recomputes it from the pricing run's stored
policy, so both read it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["BPS_PER_UNIT", "fee_minor", "stored_fee_bps"]

BPS_PER_UNIT = 10_000


def fee_minor(amount_minor: int, fee_bps: int) -> int:
    """The fee on ``amount_minor`` at ``fee_bps`` basis points (floor); ``0 <= fee <= amount`` for bps <= 10000."""
    return amount_minor * fee_bps // BPS_PER_UNIT


def stored_fee_bps(policy: Mapping[str, Any]) -> int:
    """``fee_bps`` of a pricing run's stored policy (``pricing_runs.policy``, written validated; 0 when absent)."""
    return int(policy.get("fee_bps", 0))
