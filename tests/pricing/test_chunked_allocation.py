"""Allocation in bounded memory: the chunked exact arithmetic gives the same payouts for every chunk size,
and the payouts the former all-at-once implementation gave (golden file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.errors import ValidationError
from marketplace.pricing import PricingPolicy, allocate_budget
from tests.support.allocation_cases import GOLDEN_CASES, AllocationCase, digest_result, make_pool
from tests.support.pricing import budgets, pools

GOLDEN = json.loads((Path(__file__).parent / "golden" / "allocations.json").read_text(encoding="utf-8"))

either_netting = st.builds(
    PricingPolicy,
    cap_percentile=st.sampled_from([100.0, 99.0, 50.0]),
    reserve=st.sampled_from([0.0, 1e-12]),
    provider_share_cap=st.sampled_from([None, None, 0.5, 0.25]),
    netting=st.sampled_from(["sample", "provider"]),
)


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=[c.name for c in GOLDEN_CASES])
@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 65_536])
def test_the_former_all_at_once_payouts_are_reproduced_bit_for_bit(case: AllocationCase, chunk_size: int) -> None:
    pool = make_pool(case.n, case.seed, case.tie_fraction)
    res = allocate_budget(case.budget_minor, pool["ids"], pool["scores"], pool["subs"], pool["provs"],
                          case.pricing_policy(), chunk_size=chunk_size)
    assert digest_result(res) == GOLDEN[case.name]
    assert int(res.amounts_minor.sum()) + res.unallocated_minor == case.budget_minor


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(budget=budgets, pool=pools(min_size=1, max_size=60), policy=either_netting, chunk_size=st.integers(1, 9))
def test_any_chunk_size_gives_the_one_chunk_result(budget: int, pool: dict[str, list], policy: PricingPolicy,
                                                   chunk_size: int) -> None:
    whole = allocate_budget(budget, pool["ids"], pool["scores"], pool["subs"], pool["provs"], policy,
                            chunk_size=10**9)
    chunked = allocate_budget(budget, pool["ids"], pool["scores"], pool["subs"], pool["provs"], policy,
                              chunk_size=chunk_size)
    assert chunked.amounts_minor.tolist() == whole.amounts_minor.tolist()
    assert chunked.values.tobytes() == whole.values.tobytes()
    assert (chunked.unallocated_minor, chunked.capped_provider_ids) == (whole.unallocated_minor,
                                                                        whole.capped_provider_ids)


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="chunk_size"):
        allocate_budget(10, [1], [1.0], [1], [1], chunk_size=0)
