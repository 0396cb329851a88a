"""Real fine-tuning on the tiny model: the measured gain tells useful data from garbage, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from marketplace.errors import ConfigError
from marketplace.validation import (
    ProviderDraw,
    RegimeConfig,
    ValidationConfig,
    ValidationData,
    compare_with_payouts,
    load_payouts,
    load_validation_data,
    mean_loss,
    measure_gains,
    write_validation,
)
from marketplace.valuation.target_model import load_target_model
from marketplace.valuation.tokenization import encode_texts
from tests.support.models import build_tiny_model, texts
from tests.support.validation import seed_scored_campaign

FAST = ValidationConfig(
    per_provider=6, seeds=(0, 1), max_length=48, headline="adamw",
    regimes=(RegimeConfig(name="sgd", optimizer="sgd", weighting="sample", learning_rate=0.05, epochs=3, batch_size=3),
             RegimeConfig(name="adamw", optimizer="adamw", weighting="token", learning_rate=1e-3, epochs=2,
                          batch_size=3)),
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp())


def _garbage(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#$%&*+/<=>?@^~"))
    return ["".join(rng.choice(alphabet, size=160)) for _ in range(n)]


def test_copies_of_the_target_gain_more_than_garbage(model_dir: Path) -> None:
    target = texts(6, seed=3, max_chars=200)
    sample_texts = {100 + i: (t, None) for i, t in enumerate(target)}
    sample_texts |= {200 + i: (g, None) for i, g in enumerate(_garbage(6))}
    draw_copies, draw_garbage = tuple(range(100, 106)), tuple(range(200, 206))
    data = ValidationData(
        campaign_id=1, campaign_name="tiny", model_dir=str(model_dir), per_provider=6, seeds=FAST.seeds,
        providers=(ProviderDraw(1, "copies", 6, (draw_copies, draw_copies)),
                   ProviderDraw(2, "garbage", 6, (draw_garbage, draw_garbage))),
        texts=sample_texts, target_texts=tuple(target), target_prompt_chars=(None,) * 6,
    )
    calls: list[tuple[int, int]] = []
    m = measure_gains(data, FAST, progress=lambda done, total, _msg: calls.append((done, total)))
    assert calls == [(i, 8) for i in range(1, 9)]  # 2 providers x 2 regimes x 2 seeds

    base = load_target_model(model_dir)
    enc = encode_texts(base.tokenizer, target, None, max_length=48)
    assert m.loss_before == pytest.approx(mean_loss(base.model, enc, batch_size=4, device="cpu"), rel=1e-6)
    copies, garbage = m.providers
    for regime in ("sgd", "adamw"):
        c, g = copies.regimes[regime], garbage.regimes[regime]
        assert c.mean > 0 and c.mean > g.mean + 2 * (c.sd + g.sd), (regime, c, g)
        assert len(c.per_seed) == 2 and c.sd >= 0
        assert c.mean == pytest.approx((m.loss_before - np.mean(c.loss_after)) / 6)
    assert m.config_hash == FAST.config_hash() and m.n_target == 6
    with pytest.raises(ConfigError, match="drawn with K=6"):
        measure_gains(data, FAST.model_copy(update={"per_provider": 5}))


def test_validation_end_to_end(session_factory: sessionmaker[Session], model_dir: Path, tmp_path: Path) -> None:
    camp_id = seed_scored_campaign(session_factory, model_dir, priced=True)
    cfg = FAST.model_copy(update={"per_provider": 3, "seeds": (0,), "regimes": FAST.regimes[:1],
                                  "headline": "sgd"})
    with session_factory() as s:
        payouts = load_payouts(s, camp_id)
        data = load_validation_data(s, camp_id, cfg)
    result = compare_with_payouts(measure_gains(data, cfg), payouts)
    assert [p.provider_name for p in result.providers] == ["provider-0", "provider-1", "provider-2"]
    assert all(p.n_used == 3 and p.gain["sgd"] is not None for p in result.providers)
    assert sum(p.amount_minor for p in result.providers) == result.allocated_minor == 10_000
    verdict = result.headline_verdict
    assert verdict.regime == "sgd" and 0.0 <= verdict.harmful_share <= 1.0
    assert verdict.misallocated_share is None or 0.0 <= verdict.misallocated_share <= 1.0
    paths = write_validation(result, tmp_path)
    assert all(p.exists() for p in paths.values())
