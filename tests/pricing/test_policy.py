"""A campaign's pricing policy: defaults < its stored ``options["pricing"]`` < a run's overrides, wherever
the run comes from (the pricing run applies it itself, so no caller can forget it)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.orm import Session, sessionmaker

from marketplace.errors import ValidationError
from marketplace.pricing import PricingPolicy, campaign_policy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

# screen "none": these campaigns' model is not on disk, so their runs are priced on the scores alone
STORED = {"pricing": {"cap_percentile": 80, "fee_bps": 300, "provider_share_cap": "0.6", "screen": "none"}}


def test_stored_options_then_overrides() -> None:
    assert campaign_policy(None) == campaign_policy({}) == PricingPolicy()
    assert campaign_policy(STORED) == PricingPolicy(cap_percentile=80, fee_bps=300, provider_share_cap=Decimal("0.6"),
                                                    screen="none")
    assert campaign_policy(STORED, {"fee_bps": 0}) == PricingPolicy(cap_percentile=80, screen="none",
                                                                    provider_share_cap=Decimal("0.6"))
    assert PricingPolicy().screen == "finetune"  # the library default: pay only what fine-tuning shows to help
    assert campaign_policy(STORED, PricingPolicy(reserve=1.0)) == PricingPolicy(reserve=1.0)  # a whole policy wins
    assert campaign_policy({"pricing": "not a mapping"}) == PricingPolicy()
    with pytest.raises(ValidationError, match="fee_bps"):
        campaign_policy({"pricing": {"fee_bps": -1}})


def test_a_pricing_run_without_a_policy_uses_the_campaigns(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=10_000)
        camp.options = STORED
        prov = make_provider(s)
        _, samples = make_submission(s, prov, ["one text", "two text", "three text"])
        make_score_run(s, camp, {x.id: float(i + 1) for i, x in enumerate(samples)})
        camp_id = camp.id
    stored = run_pricing(session_factory, camp_id, "2026-11")
    assert stored.policy_hash == campaign_policy(STORED).policy_hash and stored.policy["fee_bps"] == 300
    overridden = run_pricing(session_factory, camp_id, "2026-12", {"fee_bps": 100})
    assert overridden.policy["fee_bps"] == 100 and overridden.policy["cap_percentile"] == 80.0
