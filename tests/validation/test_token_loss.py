"""Losses from logits projected only at the predicting positions equal the full forward pass's, with
gradients; a model whose logits are not "head of the last hidden state" falls back to the full pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from marketplace.validation import token_loss
from marketplace.validation.token_loss import full_sample_losses, sample_losses
from marketplace.valuation.target_model import load_target_model
from marketplace.valuation.tokenization import encode_texts
from tests.support.models import build_tiny_model, texts


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model_and_batch(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    folder = build_tiny_model(Path(tmp_path_factory.mktemp("tok")), arch=request.param)
    target = load_target_model(folder)
    pool = texts(6, max_chars=200)
    # two prompt/response pairs: prompt tokens are masked out of the loss
    prompts = [None, 30, None, 12, None, None]
    encoded = encode_texts(target.tokenizer, pool, prompts, max_length=48)
    return target.model, encoded.batch(list(range(6)))


def test_gathered_losses_equal_the_full_pass_with_gradients(model_and_batch) -> None:
    model, batch = model_and_batch
    assert not bool(batch.loss_mask.all()), "the batch must have padding or prompt positions to skip"
    token_loss._CHECKED.clear()
    model.requires_grad_(True)
    try:
        fast = sample_losses(model, batch)
        assert token_loss._CHECKED and all(token_loss._CHECKED.values())
        (g_fast,) = torch.autograd.grad(fast.sum(), [model.get_input_embeddings().weight])
        full = full_sample_losses(model, batch)
        (g_full,) = torch.autograd.grad(full.sum(), [model.get_input_embeddings().weight])
    finally:
        model.requires_grad_(False)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_fast, g_full, rtol=1e-4, atol=1e-6)


class _ScaledLogits(torch.nn.Module):
    """A causal LM whose logits are the head's output times 2 (as models with logit scaling do)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.base_model = inner.base_model

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.inner.get_output_embeddings()

    def forward(self, **kwargs):  # type: ignore[no-untyped-def]
        out = self.inner(**kwargs)
        out.logits = out.logits * 2.0
        return out


def test_a_model_with_other_logits_takes_the_full_pass(model_and_batch) -> None:
    model, batch = model_and_batch
    scaled = _ScaledLogits(model)
    token_loss._CHECKED.clear()
    with torch.no_grad():
        got = sample_losses(scaled, batch)
        want = full_sample_losses(scaled, batch)
        plain = full_sample_losses(model, batch)
    assert token_loss._CHECKED and not any(token_loss._CHECKED.values())
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, plain)  # the scaling matters, so the check had something to catch
