"""Pricing: scores → exact integer payouts (pure functions) and the pricing run that posts them.

``policy`` (the frozen :class:`PricingPolicy`) and ``allocation`` (pure numpy/int arithmetic) have no
database dependency; ``service`` turns the latest complete score run of a campaign into a pricing run,
stored allocations and ledger transactions.
"""

from marketplace.pricing.allocation import AllocationResult, allocate_budget, compute_cap, compute_values
from marketplace.pricing.policy import PricingPolicy, parse_policy

__all__ = [
    "AllocationResult",
    "PricingPolicy",
    "allocate_budget",
    "compute_cap",
    "compute_values",
    "parse_policy",
]
