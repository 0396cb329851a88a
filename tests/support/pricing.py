"""Pricing test helpers: Hypothesis strategies for pools and policies, and the pieces of the slow Fraction
oracles the allocation tests check the fast path against (the obvious implementation, a Python loop)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction

from hypothesis import strategies as st

from marketplace.pricing import PricingPolicy

__all__ = [
    "budgets", "finite_scores", "hamilton", "oracle_cap", "oracle_values", "policies", "pools", "water_fill",
    "wide_scores",
]

finite_scores = st.floats(allow_nan=False, allow_infinity=False, width=64)
wide_scores = st.one_of(
    finite_scores,
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, 5e-324, 1.7976931348623157e308, 1.0, 2.0, -1.0]),
)
budgets = st.one_of(st.integers(0, 10**12), st.sampled_from([0, 1, 2, 7, 10**12, 10**12 - 1]))
policies = st.builds(
    PricingPolicy,
    cap_percentile=st.sampled_from([100.0, 99.0, 90.0, 50.0, 12.5]),
    reserve=st.sampled_from([0.0, 0.5, 1e-12]),
    provider_share_cap=st.sampled_from([None, None, Decimal("0.5"), Decimal("0.25"), Decimal("1")]),
    netting=st.just("sample"),  # the per-sample oracle below; netting has its own (tests/pricing/test_netting.py)
)


@st.composite
def pools(draw: st.DrawFn, min_size: int = 0, max_size: int = 40) -> dict[str, list]:
    n = draw(st.integers(min_size, max_size))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    scores = draw(st.lists(wide_scores, min_size=n, max_size=n))
    providers = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    submissions = [p * 100 + draw(st.integers(0, 2)) for p in providers]
    return {"ids": ids, "scores": scores, "subs": submissions, "provs": providers}


def oracle_cap(scores: Iterable[float], policy: PricingPolicy) -> float:
    """The cap: the order statistic at ``cap_percentile`` (rank ceil(p·n/100)), never below 0."""
    ordered = sorted(scores)
    rank = min(max(math.ceil(Fraction(policy.cap_percentile) * len(ordered) / 100), 1), len(ordered))
    return max(ordered[rank - 1], 0.0)


def oracle_values(rows: list[tuple[int, float, int]], cap: float, policy: PricingPolicy) -> dict[int, Fraction]:
    """clip(score, 0, cap) per sample id, 0 below the reserve."""
    vals: dict[int, Fraction] = {}
    for sid, s, _ in rows:
        v = min(max(s, 0.0), cap)
        vals[sid] = Fraction(0) if v < policy.reserve or v <= 0 else Fraction(v)
    return vals


def water_fill(values: dict[int, Fraction], prov_of: dict[int, int], provider_total: dict[int, Fraction],
               budget: int, policy: PricingPolicy) -> tuple[dict[int, Fraction], int]:
    """Exact quotas ∝ ``values`` with providers paid ∝ ``provider_total`` and, under a share cap, capped
    providers held at the cap and the rest refilled; returns (quotas by sample id, units to hand out)."""
    own: dict[int, Fraction] = {}
    for sid, v in values.items():
        own[prov_of[sid]] = own.get(prov_of[sid], Fraction(0)) + v
    total = sum(provider_total.values())
    if policy.provider_share_cap is None:
        return {sid: budget * provider_total[prov_of[sid]] * v / (total * own[prov_of[sid]])
                if v > 0 else Fraction(0) for sid, v in values.items()}, budget
    cap_minor = math.floor(Fraction(policy.provider_share_cap) * budget)
    active = {p for p, v in provider_total.items() if v > 0}
    capped: set[int] = set()
    left = Fraction(budget)
    while active:
        lam = left / sum(provider_total[p] for p in active)
        over = {p for p in active if lam * provider_total[p] > cap_minor}
        if not over:
            break
        capped |= over
        left -= cap_minor * len(over)
        active -= over
    target = budget if active else cap_minor * len(capped)
    quotas: dict[int, Fraction] = {}
    for sid, v in values.items():
        p = prov_of[sid]
        if v <= 0 or provider_total[p] <= 0:  # nothing to pay this sample, or its provider nets to nothing
            quotas[sid] = Fraction(0)
        elif p in capped:
            quotas[sid] = cap_minor * v / own[p]
        else:
            quotas[sid] = left * provider_total[p] * v / (sum(provider_total[q] for q in active) * own[p])
    return quotas, target


def hamilton(quotas: dict[int, Fraction], target: int) -> dict[int, int]:
    """Largest remainder: floors, then one unit each to the largest remainders, ties by ascending id."""
    out = {sid: math.floor(q) for sid, q in quotas.items()}
    seats = target - sum(out.values())
    for sid in sorted(quotas, key=lambda s: (-(quotas[s] - math.floor(quotas[s])), s))[:seats]:
        out[sid] += 1
    return out
