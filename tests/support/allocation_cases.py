"""Deterministic pools for the allocation golden file (tests/pricing/golden/allocations.json).

The golden file was written by the in-memory allocation (one pass over every sample with Python-int
arrays) before allocation became chunked; the chunked one must reproduce it bit for bit. Pools come
from ``random.Random`` with plain arithmetic on float literals only, so they are the same on every
Python and platform (no libm call, no NumPy stream).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from marketplace.pricing import AllocationResult, PricingPolicy

__all__ = ["GOLDEN_CASES", "AllocationCase", "digest_result", "make_pool"]

_SCALES = (1e-9, 1e-6, 1e-3, 0.05, 1.0, 3.0, 1e3, 1e12)
_TIED = (0.0, -0.0, 0.25, 0.5, 1e-7, -0.125, 2.0)


@dataclass(frozen=True)
class AllocationCase:
    """A pool (``n`` samples, ``seed``) priced with ``budget_minor`` under ``policy``."""

    name: str
    n: int
    seed: int
    budget_minor: int
    policy: dict[str, Any]
    tie_fraction: float = 0.1

    def pricing_policy(self) -> PricingPolicy:
        return PricingPolicy.model_validate(self.policy)


def make_pool(n: int, seed: int, tie_fraction: float) -> dict[str, np.ndarray]:
    """``n`` samples with unique shuffled ids, 9 providers, ~3 submissions each; scores of mixed sign
    and magnitude, ``tie_fraction`` of them drawn from a few repeated values (rounding ties)."""
    rng = random.Random(seed)
    ids = rng.sample(range(1, 20 * n + 1), n)
    scores = []
    for _ in range(n):
        if rng.random() < tie_fraction:
            scores.append(rng.choice(_TIED))
        else:
            scores.append((rng.random() - 0.35) * rng.choice(_SCALES))
    provs = [1 + rng.randrange(9) for _ in range(n)]
    subs = [p * 100 + rng.randrange(3) for p in provs]
    return {"ids": np.array(ids, np.int64), "scores": np.array(scores, np.float64),
            "subs": np.array(subs, np.int64), "provs": np.array(provs, np.int64)}


def digest_result(res: AllocationResult) -> dict[str, Any]:
    """What the golden file pins of a result: sha256 of the amounts (int64 LE) and values (float64 LE)
    in sample-id order, the totals, the cap and the per-provider split."""
    return {
        "amounts_sha256": hashlib.sha256(res.amounts_minor.astype("<i8").tobytes()).hexdigest(),
        "values_sha256": hashlib.sha256(res.values.astype("<f8").tobytes()).hexdigest(),
        "cap_value": None if res.cap_value is None else float(res.cap_value).hex(),
        "allocated_minor": res.allocated_minor,
        "unallocated_minor": res.unallocated_minor,
        "capped_provider_ids": list(res.capped_provider_ids),
        "per_provider": {str(k): v for k, v in sorted(res.per_provider.items())},
        "n_paid": int((res.amounts_minor > 0).sum()),
    }


GOLDEN_CASES = (
    AllocationCase("netted-default", 5000, 1, 1_000_000, {}),
    AllocationCase("netted-odd-budget", 3000, 2, 999_999_937, {"cap_percentile": 90}),
    AllocationCase("netted-share-cap", 4000, 3, 10**12 - 1, {"provider_share_cap": Decimal("0.2")}),
    AllocationCase("netted-many-ties", 2000, 4, 7_777, {"cap_percentile": 100}, tie_fraction=0.8),
    AllocationCase("sample", 5000, 5, 1_000_000, {"netting": "sample"}),
    AllocationCase("sample-reserve-cap", 3000, 6, 123_456_789, {"netting": "sample", "cap_percentile": 50,
                                                              "reserve": 0.001}),
    AllocationCase("sample-share-cap", 4000, 7, 5_000_000, {"netting": "sample", "provider_share_cap": Decimal("0.1")}),
    AllocationCase("sample-all-tied", 3000, 8, 1_000_001, {"netting": "sample", "cap_percentile": 100},
                   tie_fraction=1.0),
    AllocationCase("sample-small-budget", 5000, 9, 37, {"netting": "sample"}),
)
