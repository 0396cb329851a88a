"""Fine-tuning in length-sorted micro-batches takes the same optimizer steps as one padded batch."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import marketplace.validation.finetune  # noqa: F401  (the module, not the function the package exports)
from marketplace.validation.config import RegimeConfig
from marketplace.valuation.target_model import load_target_model
from marketplace.valuation.tokenization import encode_texts
from tests.support.models import build_tiny_model, texts

ft = sys.modules["marketplace.validation.finetune"]


@pytest.fixture(scope="module")
def model_and_texts(tmp_path_factory: pytest.TempPathFactory):
    target = load_target_model(build_tiny_model(Path(tmp_path_factory.mktemp("ft"))))
    pool = texts(24, max_chars=400)
    # lengths from a few characters to the full window, so that one padded batch is mostly padding
    pool = [t[: 12 + (i * 37) % 400] for i, t in enumerate(pool)]
    prompts = [None if i % 3 else 8 for i in range(len(pool))]
    return target.model, encode_texts(target.tokenizer, pool, prompts, max_length=64)


def _padded(encoded, chunks: list[np.ndarray]) -> int:
    return sum(len(c) * max(len(encoded.ids[r]) for r in c) for c in chunks)


def test_length_chunks_partition_the_batch_and_cut_padding(model_and_texts) -> None:
    _, encoded = model_and_texts
    rng = np.random.default_rng(0)
    for size in (1, 2, 3, 5, 16, 24):
        rows = rng.permutation(len(encoded.ids))[:size]
        chunks = ft._length_chunks(encoded, rows)
        assert sorted(int(r) for c in chunks for r in c) == sorted(int(r) for r in rows)
        assert all(len(c) >= min(ft.MIN_CHUNK, size) for c in chunks)
        assert _padded(encoded, chunks) <= _padded(encoded, [rows])
    rows = np.arange(len(encoded.ids))
    assert len(ft._length_chunks(encoded, rows)) > 1, "rows of very different lengths must be cut"
    same = np.asarray([int(np.argmax([len(i) for i in encoded.ids]))] * 8)
    assert len(ft._length_chunks(encoded, same)) == 1, "equal lengths leave nothing to save"


@pytest.mark.parametrize("weighting", ["sample", "token"])
def test_micro_batches_take_the_padded_batch_step(model_and_texts, monkeypatch, weighting) -> None:
    """SGD is linear in the gradient, so whole runs must agree."""
    model, encoded = model_and_texts
    regime = RegimeConfig(name="t", optimizer="sgd", weighting=weighting, learning_rate=0.05, epochs=2,
                          batch_size=12)
    rows = np.arange(len(encoded.ids))
    assert len(ft._length_chunks(encoded, rows[:12])) > 1
    chunked, whole = copy.deepcopy(model), copy.deepcopy(model)
    ft.finetune(chunked, encoded, rows, regime, seed=3, device="cpu")
    monkeypatch.setattr(ft, "_length_chunks", lambda _encoded, r: [np.asarray(r)])
    ft.finetune(whole, encoded, rows, regime, seed=3, device="cpu")
    moved = 0.0
    for (name, a), b, c in zip(chunked.named_parameters(), whole.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
        moved = max(moved, float((b - c).abs().max()))
    assert moved > 1e-4, "the runs must have changed the model for the comparison to mean anything"


def test_micro_batches_give_adamw_the_padded_batch_gradient(model_and_texts, monkeypatch) -> None:
    """AdamW divides by the gradient's running scale, so a coordinate whose gradient is ~0 moves by up to
    the learning rate on rounding alone: compare what it is given, the first step's gradient."""
    model, encoded = model_and_texts
    regime = RegimeConfig(name="t", optimizer="adamw", weighting="token", learning_rate=1e-3, epochs=1,
                          batch_size=12)
    rows = np.arange(12)
    assert len(ft._length_chunks(encoded, rows)) > 1
    seen: list[list[torch.Tensor]] = []
    step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append([p.grad.detach().clone() for group in self.param_groups for p in group["params"]])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    ft.finetune(copy.deepcopy(model), encoded, rows, regime, seed=3, device="cpu")
    monkeypatch.setattr(ft, "_length_chunks", lambda _encoded, r: [np.asarray(r)])
    ft.finetune(copy.deepcopy(model), encoded, rows, regime, seed=3, device="cpu")
    (chunked,), (whole,) = seen[:1], seen[1:]
    assert len(chunked) == len(whole) and any(float(g.abs().max()) > 0 for g in whole)
    for a, b in zip(chunked, whole, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max()) + 1e-12)
