"""The share arithmetic and the payout comparison against hand-computed cases (no database, no model)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError as PydanticValidationError

from marketplace.validation import (
    GainMeasurement,
    PayoutSnapshot,
    ProviderGain,
    ProviderPayout,
    RegimeGain,
    ValidationConfig,
    compare_with_payouts,
    validation_html,
    validation_markdown,
    write_validation,
)
from marketplace.validation.shares import harmful_share, ideal_shares, payout_shares, total_variation, within_noise

EVIL = '=HYPERLINK("http://evil.example")<script>alert(1)</script>|x'


def test_hand_computed_shares() -> None:
    p = payout_shares(np.array([600, 300, 100]))
    assert p is not None and np.allclose(p, [0.6, 0.3, 0.1])
    gains = np.array([2e-3, -1e-3, 1e-3])
    q = ideal_shares(gains, np.array([3, 2, 1]))  # weights 6e-3, 0, 1e-3
    assert q is not None and np.allclose(q, [6 / 7, 0.0, 1 / 7])
    # 0.5 * (|0.6 - 6/7| + |0.3 - 0| + |0.1 - 1/7|) = 0.5 * (0.2571 + 0.3 + 0.0429) = 0.3
    assert total_variation(p, q) == pytest.approx(0.3)
    assert harmful_share(p, gains) == pytest.approx(0.3)
    sds = np.array([1e-4, 2e-3, 5e-4])  # the negative gain is within one sd of 0
    assert harmful_share(p, gains, sds) == 0.0
    assert within_noise(gains, sds).tolist() == [False, True, False]


def test_degenerate_shares() -> None:
    assert payout_shares(np.array([0, 0])) is None
    assert ideal_shares(np.array([-1.0, -2.0, np.nan]), np.array([1, 1, 1])) is None  # every gain <= 0
    assert ideal_shares(np.array([5.0, -1.0]), np.array([0, 4])) is None  # the only positive gain is unpaid
    q = ideal_shares(np.array([1.0, np.nan]), np.array([2, 9]))  # unmeasured: no ideal share
    assert q is not None and q.tolist() == [1.0, 0.0]
    assert harmful_share(np.array([0.5, 0.5]), np.array([np.nan, -1.0])) == 0.5  # NaN never harmful
    assert total_variation(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    with pytest.raises(ValueError, match="shape"):
        total_variation(np.array([1.0]), np.array([0.5, 0.5]))


def test_config_is_frozen_hashed_and_checked() -> None:
    cfg = ValidationConfig()
    assert (cfg.per_provider, cfg.seeds, cfg.headline) == (64, (0, 1), "adamw")
    assert [(r.name, r.optimizer, r.weighting) for r in cfg.regimes] == [("sgd", "sgd", "sample"),
                                                                         ("adamw", "adamw", "token")]
    assert cfg.config_hash() == ValidationConfig().config_hash() != ValidationConfig(per_provider=8).config_hash()
    with pytest.raises(PydanticValidationError):
        cfg.per_provider = 3
    with pytest.raises(PydanticValidationError, match="headline"):
        ValidationConfig(headline="lion")
    with pytest.raises(PydanticValidationError, match="distinct"):
        ValidationConfig(seeds=(1, 1))


def _gain(name: str, per_seed: tuple[float, ...]) -> RegimeGain:
    arr = np.asarray(per_seed)
    return RegimeGain(name, per_seed, tuple(5.0 - x for x in per_seed), float(arr.mean()),
                      float(arr.std(ddof=1)) if arr.size > 1 else 0.0)


def _measurement(gains: dict[int, tuple[tuple[float, ...], tuple[float, ...]]]) -> GainMeasurement:
    """gains: provider id -> (sgd per seed, adamw per seed)."""
    cfg = ValidationConfig(per_provider=4)
    providers = tuple(
        ProviderGain(pid, f"p{pid}" if pid != 4 else EVIL, 10, 4, {"sgd": _gain("sgd", s), "adamw": _gain("adamw", a)})
        for pid, (s, a) in sorted(gains.items())
    )
    return GainMeasurement(campaign_id=1, campaign_name="camp <b>", config_hash=cfg.config_hash(),
                           config=cfg.model_dump(mode="json"), model_digest="d" * 64, device="cpu",
                           loss_before=5.0, n_target=7, providers=providers, seconds=1.5)


def _payouts(amounts: dict[int, tuple[int, int]]) -> PayoutSnapshot:
    """amounts: provider id -> (n_paid, amount_minor)."""
    total = sum(a for _, a in amounts.values())
    return PayoutSnapshot(pricing_run_id=9, period="2026-10", currency="EUR", budget_minor=total,
                          allocated_minor=total,
                          providers=tuple(ProviderPayout(pid, f"p{pid}", n, a) for pid, (n, a) in amounts.items()))


def test_compare_with_payouts_hand_computed() -> None:
    # adamw (headline): gains 2e-3, -1e-3, unmeasured, 1e-3; provider 4 is measured but never paid
    measurement = _measurement({
        1: ((1e-3, 1e-3), (1.9e-3, 2.1e-3)),
        2: ((-2e-3, -2e-3), (-1.1e-3, -0.9e-3)),
        4: ((5e-4, 5e-4), (1e-3, 1e-3)),
    })
    payouts = _payouts({1: (3, 600), 2: (2, 300), 3: (1, 100)})
    result = compare_with_payouts(measurement, payouts)
    assert [p.provider_id for p in result.providers] == [1, 2, 3, 4]
    by_id = {p.provider_id: p for p in result.providers}
    assert by_id[3].gain["adamw"] is None and by_id[3].ideal_share["adamw"] == 0.0
    # Provider 4 helps but was paid nothing: its ideal share counts its payable samples (10 each), not the
    # run's choice, so leaving it unpaid is misallocation, not an excuse to drop it from the ideal split.
    assert by_id[4].payout_share == 0.0 and by_id[4].n_paid == 0
    assert by_id[4].ideal_share["adamw"] == pytest.approx(1 / 3)  # 1e-3 x 10 of (2e-3 + 1e-3) x 10
    assert by_id[1].ideal_share["adamw"] == pytest.approx(2 / 3)  # provider 2 is negative
    head = result.headline_verdict
    assert head.regime == "adamw" and head.ideal_defined
    # 0.5 * (|0.6 - 2/3| + |0.3 - 0| + |0.1 - 0| + |0 - 1/3|) = 0.4
    assert head.misallocated_share == pytest.approx(0.4)
    assert head.harmful_share == pytest.approx(0.3)
    assert head.clearly_harmful_share == pytest.approx(0.3)  # -1e-3 with sd 1.4e-4: beyond the noise
    assert head.unmeasured_share == pytest.approx(0.1) and head.uncertain_share == 0.0
    json.dumps(result.to_dict())


def test_all_gains_negative_leaves_the_ideal_undefined() -> None:
    measurement = _measurement({1: ((-1e-3, 0.0), (-1e-3, -1e-3)), 2: ((-3e-3, 0.0), (-2e-3, -2e-3))})
    result = compare_with_payouts(measurement, _payouts({1: (2, 700), 2: (1, 300)}))
    for verdict in result.verdicts:
        assert not verdict.ideal_defined and verdict.misallocated_share is None
        assert "undefined" in verdict.note
        assert verdict.harmful_share == pytest.approx(1.0)
    sgd = next(v for v in result.verdicts if v.regime == "sgd")
    assert sgd.clearly_harmful_share == pytest.approx(0.0)  # sd 7e-4 and 2.1e-3: both within the noise
    assert sgd.uncertain_share == pytest.approx(1.0)
    assert all(p.ideal_share["adamw"] is None for p in result.providers)
    assert "n/a" in validation_markdown(result)


def test_writers_escape_provider_strings(tmp_path: Path) -> None:
    measurement = _measurement({1: ((1e-3, 1e-3), (2e-3, 2e-3)), 4: ((1e-3, 1e-3), (1e-3, 1e-3))})
    payouts = PayoutSnapshot(9, "2026-10", "EUR", 1000, 1000,
                             (ProviderPayout(1, "p1", 2, 500), ProviderPayout(4, EVIL, 2, 500)))
    result = compare_with_payouts(measurement, payouts)
    page = validation_html(result)
    assert "<script>" not in page and "&lt;script&gt;" in page and "camp &lt;b&gt;" in page
    md = validation_markdown(result)
    assert "\\|x" in md and "<script>" not in md and "misallocated 16.7%" in md  # ideal 2/3, 1/3; paid 1/2 each
    paths = write_validation(result, tmp_path)
    assert set(paths) == {"html", "md", "json", "csv"}
    with paths["csv"].open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    evil_row = next(r for r in rows if r["provider_id"] == "4")
    assert evil_row["provider"].startswith("'=")
    assert math.isclose(float(evil_row["ideal_share_adamw"]), 1 / 3)
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["headline"] == "adamw"
