"""The measured split (``PricingPolicy.provider_split = "measured"``): between the providers a fine-tuning check
passed, the budget follows each one's measured gain per sample times its paid samples; the scores split each
provider's part. Exact, against a Fraction oracle, and end to end through a pricing run."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db.ledger import Allocation
from marketplace.pricing import PricingPolicy, allocate_budget
from marketplace.pricing.allocation import measured_provider_weights
from marketplace.pricing.runs import create_pricing_run
from marketplace.validation.screening import ProviderCheck, Screening
from tests.support.pricing import budgets, hamilton, oracle_cap, oracle_values, pools, water_fill

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

policies = st.builds(
    PricingPolicy,
    cap_percentile=st.sampled_from([100.0, 99.0, 50.0]),
    reserve=st.sampled_from([0.0, 0.5]),
    provider_share_cap=st.sampled_from([None, None, Decimal("0.5"), Decimal("0.3")]),
    netting=st.just("provider"),
)
gains_st = st.dictionaries(st.integers(1, 4), st.floats(-1e-2, 1e-2, allow_nan=False) | st.just(0.0)
                           | st.floats(1e-9, 1e3), max_size=4)


def oracle(budget: int, pool: dict[str, list], policy: PricingPolicy, gains: dict[int, float]) -> dict[int, int]:
    """Fractions everywhere: netting decides who may be paid; gain x paid samples decides how much."""
    rows = sorted(zip(pool["ids"], pool["scores"], pool["provs"], strict=True))
    if not rows:
        return {}
    cap = oracle_cap([s for _, s, _ in rows], policy)
    vals = oracle_values(rows, cap, policy)
    prov_of = {sid: p for sid, _, p in rows}
    net: dict[int, Fraction] = {}
    paid: dict[int, int] = {}
    for sid, s, p in rows:
        net[p] = net.get(p, Fraction(0)) + vals[sid] - (Fraction(min(-s, cap)) if s < 0 else 0)
        paid[p] = paid.get(p, 0) + (vals[sid] > 0)
    weight = {p: Fraction(gains.get(p, 0.0)) * paid[p] if net[p] > 0 and gains.get(p, 0.0) > 0 else Fraction(0)
              for p in net}
    if sum(weight.values()) == 0 or budget == 0:
        return {sid: 0 for sid in vals}
    quotas, target = water_fill(vals, prov_of, weight, budget, policy)
    return hamilton(quotas, target)


@FAST
@given(budget=budgets, pool=pools(), policy=policies, gains=gains_st)
def test_measured_split_matches_the_fraction_oracle(budget: int, pool: dict[str, list], policy: PricingPolicy,
                                                    gains: dict[int, float]) -> None:
    res = allocate_budget(budget, pool["ids"], pool["scores"], pool["subs"], pool["provs"], policy,
                          provider_gains=gains)
    assert res.amount_by_sample() == oracle(budget, pool, policy, gains)
    assert res.allocated_minor + res.unallocated_minor == budget
    small = allocate_budget(budget, pool["ids"], pool["scores"], pool["subs"], pool["provs"], policy,
                            provider_gains=gains, chunk_size=3)
    assert small.amount_by_sample() == res.amount_by_sample()


def test_measured_split_example() -> None:
    policy = PricingPolicy(cap_percentile=100, netting="provider")
    # provider 1: two paid samples with gain 3e-3; provider 2: one paid sample (and a negative one) with gain 1e-3.
    ids, scores, subs, provs = [1, 2, 3, 4], [1.0, 3.0, 5.0, -1.0], [10, 10, 20, 20], [1, 1, 2, 2]
    res = allocate_budget(7000, ids, scores, subs, provs, policy, provider_gains={1: 3e-3, 2: 1e-3})
    assert res.per_provider == {1: 6000, 2: 1000}  # 3e-3 x 2 : 1e-3 x 1, whatever the scores say
    assert res.amount_by_sample() == {1: 1500, 2: 4500, 3: 1000, 4: 0}  # inside provider 1: by score, 1 : 3
    # without gains the scores decide: provider 1 nets 4, provider 2 nets 5 - 1 = 4
    assert allocate_budget(7000, ids, scores, subs, provs, policy).per_provider == {1: 3500, 2: 3500}
    # a provider whose scores net to <= 0 stays unpaid even with a positive gain; one without a gain too
    res = allocate_budget(1000, [1, 2, 3], [1.0, -5.0, 1.0], [10, 10, 20], [1, 1, 2], policy,
                          provider_gains={1: 1.0, 2: 1e-3})
    assert res.per_provider == {1: 0, 2: 1000}
    assert allocate_budget(1000, [1, 3], [1.0, 1.0], [10, 20], [1, 2], policy,
                           provider_gains={2: 1e-3}).per_provider == {1: 0, 2: 1000}


def test_weights_are_exact() -> None:
    w = measured_provider_weights([0.1, 0.2, -1.0, float("nan"), 0.3], [3, 1, 5, 2, 0])
    assert w[2:] == [0, 0, 0]  # a negative or non-finite gain, or no paid sample, weighs nothing
    assert Fraction(w[0], w[1]) == Fraction(0.1) * 3 / Fraction(0.2)  # exactly, no rounding


def test_policy_hash_covers_the_split_only_where_it_applies() -> None:
    base = PricingPolicy()
    assert base.measured_split and '"provider_split":"measured"' in base.canonical_json()
    assert PricingPolicy(provider_split="scores").policy_hash != base.policy_hash
    for p in (PricingPolicy(screen="none"), PricingPolicy(netting="sample")):  # no check or no netting: no effect
        assert not p.measured_split and "provider_split" not in p.canonical_json()
        assert p.policy_hash == p.model_copy(update={"provider_split": "scores"}).policy_hash


def test_a_pricing_run_splits_providers_by_the_stored_gains(session_factory: sessionmaker[Session],
                                                             tmp_path: Path) -> None:
    from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

    with session_factory() as s, s.begin():
        camp = make_campaign(s, screen="none")
        a, b = make_provider(s, "gain-a"), make_provider(s, "gain-b")
        _, samples_a = make_submission(s, a, [f"measured split a {i}" for i in range(4)])
        _, samples_b = make_submission(s, b, [f"measured split b {i}" for i in range(2)])
        make_score_run(s, camp, {**{x.id: 1.0 for x in samples_a}, **{x.id: 9.0 for x in samples_b}})
        camp_id, a_id, b_id = camp.id, a.id, b.id
    check = Screening(config_hash="x", config={}, model_digest="m", checks=(
        ProviderCheck(a_id, "gain-a", 4, 4, (2e-3, 2e-3), 2e-3, 0.0, True),
        ProviderCheck(b_id, "gain-b", 2, 2, (1e-3, 1e-3), 1e-3, 0.0, True)))
    with session_factory() as s, s.begin():
        run, _ = create_pricing_run(s, camp_id, "2026-11", {"screen": "finetune"}, screening=check.to_json())
        paid = dict(s.execute(select(Allocation.provider_id, func.sum(Allocation.amount_minor))
                              .where(Allocation.pricing_run_id == run.id).group_by(Allocation.provider_id)).all())
        assert run.policy["provider_split"] == "measured"
    # 2e-3 x 4 samples : 1e-3 x 2 samples = 4 : 1, though provider b's scores are 9x higher
    assert paid[a_id] * 1 == paid[b_id] * 4 and paid[a_id] + paid[b_id] == run.budget_minor
    with session_factory() as s, s.begin():
        by_scores, _ = create_pricing_run(s, camp_id, "2026-12", {"screen": "finetune", "provider_split": "scores"},
                                          screening=check.to_json())
        paid = dict(s.execute(select(Allocation.provider_id, func.sum(Allocation.amount_minor))
                              .where(Allocation.pricing_run_id == by_scores.id).group_by(Allocation.provider_id)).all())
    assert paid[b_id] > paid[a_id]  # 18 : 4 by netted scores
