"""Pricing: scores → exact integer payouts (pure functions) and the pricing run that posts them.

``policy`` (the frozen :class:`PricingPolicy` and the campaign's policy) and ``allocation`` (pure
numpy/int arithmetic) do no I/O. ``eligible`` picks the score run and the payable samples' scores,
``runs`` stores a pricing run with its allocations, ``posting`` posts it to the ledger by adjustment,
and ``runner`` (:func:`run_pricing`, the one path of ``marketplace price`` and the ``price`` flow)
drives them in their own transactions.
"""

from marketplace.pricing.allocation import AllocationResult, allocate_budget, compute_cap, compute_values
from marketplace.pricing.policy import PricingPolicy, campaign_policy, parse_policy

__all__ = [
    "AllocationResult",
    "PricingPolicy",
    "allocate_budget",
    "campaign_policy",
    "compute_cap",
    "compute_values",
    "parse_policy",
]
