"""LinFiK quality gates on a small *trained* model (the demo recipe, shortened for CI).

- Spearman(LoGra LinFiK at the default ranks, exact LinFiK on the watched layers) ≥ 0.9;
- Spearman(LinFiK, measured drop of the target loss after one SGD step of size η on the sample alone)
  ≥ 0.9 over 200 samples (small η);
- Spearman against exact LinFiK over all parameters is reported (printed), not gated.

benchmarks/linfik_quality.py runs the same measurement on the full demo model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.corpus import python_docs_paragraphs
from marketplace.valuation.demo_model import DemoModelConfig, build_demo_model
from marketplace.valuation.quality import evaluate_linfik_quality
from marketplace.valuation.target_model import load_target_model
from tests.support.models import texts

pytestmark = pytest.mark.slow

SMALL_REAL = DemoModelConfig(arch="gpt2", n_layer=2, d_model=64, n_head=2, context=128, vocab_size=1024,
                             text_chars=300_000, train_steps=120, batch_size=16, seq_len=64, warmup_steps=10)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.getbasetemp() / "small-real"
    result = build_demo_model(out, SMALL_REAL, seed=0, paragraphs=python_docs_paragraphs(300_000, seed=0))
    assert result.final_eval_loss < result.initial_eval_loss - 1.0  # it learned something
    return out


def test_linfik_quality_gates(small_model: Path) -> None:
    target = load_target_model(small_model)
    pool = texts(212, seed=5, max_chars=240)
    report = evaluate_linfik_quality(target, pool[:200], pool[200:], eta=1e-3, max_length=48, drop_scopes=("all",))
    s = report.spearman
    print("\nLinFiK quality on the small trained model:", {k: round(v, 4) for k, v in s.items()})
    assert report.n_samples == 200
    assert s["logra~exact_watched"] >= 0.9
    assert s["logra~drop_all"] >= 0.9
    assert s["exact_all~drop_all"] >= 0.95  # the first-order prediction itself holds at this η
