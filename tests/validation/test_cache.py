"""A payout validation reuses a stored fine-tuning measurement when nothing it depends on changed
(marketplace.validation.cache), and measures again when something did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from marketplace.validation import RegimeConfig, ValidationConfig, validate_campaign
from marketplace.validation import run as validation_run
from tests.support.models import build_tiny_model
from tests.support.validation import seed_scored_campaign

TINY = ValidationConfig(
    per_provider=3, seeds=(0,), max_length=32, headline="sgd",
    regimes=(RegimeConfig(name="sgd", optimizer="sgd", weighting="sample", learning_rate=0.05, epochs=1,
                          batch_size=3),),
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp())


def test_the_measurement_is_reused_until_its_inputs_change(session_factory: sessionmaker[Session], model_dir: Path,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    camp_id = seed_scored_campaign(session_factory, model_dir, priced=True)
    calls: list[int] = []
    real = validation_run.measure_gains

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(validation_run, "measure_gains", counting)
    cache = tmp_path / "measurements"
    first, _ = validate_campaign(session_factory, camp_id, TINY, tmp_path / "out1", cache_dir=cache)
    assert len(calls) == 1 and len(list(cache.glob("*.json"))) == 1

    # Repricing changes the payouts, not the experiment: the measurement is reused, the comparison is new.
    run_pricing(session_factory, camp_id, "2026-11", PricingPolicy(screen="none", cap_percentile=100, netting="sample"))
    again, _ = validate_campaign(session_factory, camp_id, TINY, tmp_path / "out2", cache_dir=cache)
    assert len(calls) == 1
    assert again.period == "2026-11" and again.loss_before == first.loss_before
    assert [p.gain for p in again.providers] == [p.gain for p in first.providers]

    # Another setting is another experiment; so is no cache at all.
    other = TINY.model_copy(update={"seeds": (1,)})
    validate_campaign(session_factory, camp_id, other, tmp_path / "out3", cache_dir=cache)
    validate_campaign(session_factory, camp_id, TINY, tmp_path / "out4")
    assert len(calls) == 3 and len(list(cache.glob("*.json"))) == 2

    # A damaged file is never trusted: it is measured again and rewritten.
    (stored,) = [p for p in cache.glob("*.json") if json.loads(p.read_text())["measurement"]["config"]["seeds"] == [0]]
    stored.write_text("{not json")
    validate_campaign(session_factory, camp_id, TINY, tmp_path / "out5", cache_dir=cache)
    assert len(calls) == 4 and json.loads(stored.read_text())["version"] == 1
