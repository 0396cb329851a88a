"""Fine-tune a causal LM on a few encoded texts, and measure its mean loss on a target set.

Both work on :class:`~marketplace.valuation.tokenization.EncodedTexts` (prompt tokens already masked)
and the loss of :func:`~marketplace.valuation.tokenization.per_sample_loss`, so the numbers are in the
same units as LinFiK: nats per token. The logits are projected only at the positions that predict a
target token (:mod:`marketplace.validation.token_loss`), which is most of the saving on short texts.

Dropout is off while training (the model stays in eval mode): the gradient is then the one LinFiK
takes, and the spread over seeds comes from the sample draw and the batch order only. The demo
models have no dropout anyway.
"""

from __future__ import annotations

import numpy as np
import torch

from marketplace.validation.config import RegimeConfig
from marketplace.validation.token_loss import sample_losses
from marketplace.valuation.config import Weighting
from marketplace.valuation.tokenization import EncodedTexts, TokenBatch

__all__ = ["batch_loss", "finetune", "mean_loss"]


def batch_loss(model: torch.nn.Module, batch: TokenBatch, weighting: Weighting) -> torch.Tensor:
    """Scalar loss of one batch: the mean of per-sample mean token losses (``sample``) or the mean over
    every target token of the batch (``token``, the usual language-model loss)."""
    per_sample = sample_losses(model, batch)  # (B,)
    if weighting == "sample":
        return per_sample.mean()
    n_tok = batch.loss_mask[:, 1:].sum(dim=1).to(per_sample.dtype)  # (B,)
    return (per_sample * n_tok).sum() / n_tok.sum().clamp_min(1.0)


def mean_loss(model: torch.nn.Module, encoded: EncodedTexts, *, batch_size: int, device: torch.device | str,
              weighting: Weighting = "sample") -> float:
    """Mean loss over every text of ``encoded`` (nats/token), without gradients.

    ``sample`` (default): the mean over texts of each text's mean token loss, the target loss L_Y whose
    drop LinFiK predicts; ``token``: every target token of the set counts once. Texts are batched
    longest first (little padding); the sum is taken in float64.
    """
    n = len(encoded.ids)
    if n == 0:
        raise ValueError("mean_loss needs at least one text")
    order = np.argsort(-encoded.lengths, kind="stable")
    total = weight = 0.0
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            batch = encoded.batch(order[start:start + batch_size]).to(torch.device(device))
            losses = sample_losses(model, batch).to(torch.float64)  # (B,)
            if weighting == "sample":
                w = torch.ones_like(losses)
            else:
                w = batch.loss_mask[:, 1:].sum(dim=1).to(torch.float64)
            total += float((losses * w).sum())
            weight += float(w.sum())
    return total / max(weight, 1.0)


def finetune(model: torch.nn.Module, encoded: EncodedTexts, rows: np.ndarray, regime: RegimeConfig, *,
             seed: int, device: torch.device | str) -> None:
    """Train ``model`` in place on ``encoded[rows]`` for ``regime.epochs`` passes.

    Each pass shuffles ``rows`` with a generator seeded by ``seed`` (so the batch order depends on the
    seed only) and takes one optimizer step per ``regime.batch_size`` rows. The model's parameters are
    trainable during the call and frozen again after it.
    """
    dev = torch.device(device)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return
    model.eval()
    model.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer = (
        torch.optim.SGD(params, lr=regime.learning_rate) if regime.optimizer == "sgd"
        else torch.optim.AdamW(params, lr=regime.learning_rate, weight_decay=0.0)
    )
    gen = torch.Generator().manual_seed(int(seed))
    try:
        for _ in range(regime.epochs):
            perm = rows[torch.randperm(rows.size, generator=gen).numpy()]
            for start in range(0, perm.size, regime.batch_size):
                batch = encoded.batch(perm[start:start + regime.batch_size]).to(dev)
                loss = batch_loss(model, batch, regime.weighting)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        opt.zero_grad(set_to_none=True)
        model.requires_grad_(False)
