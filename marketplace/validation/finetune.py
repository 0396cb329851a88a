"""Fine-tune a causal LM on a few encoded texts, and measure its mean loss on a target set.

Both work on :class:`~marketplace.valuation.tokenization.EncodedTexts` (prompt tokens already masked)
and the loss of :func:`~marketplace.valuation.tokenization.per_sample_loss`, so the numbers are in the
same units as LinFiK: nats per token. The logits are projected only at the positions that predict a
target token (:mod:`marketplace.validation.token_loss`), which is most of the saving on short texts, and
each optimizer batch runs as micro-batches of similar length (:func:`_length_chunks`), so that little
of the work is padding; the step is the batch's own.

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
    total, weight = _loss_sum(model, batch, weighting)
    return total / max(weight, 1.0)


def _row_weights(batch: TokenBatch, weighting: Weighting) -> torch.Tensor:
    """(B,) how much each sample counts in the batch loss: 1 (``sample``) or its target tokens (``token``)."""
    if weighting == "sample":
        return torch.ones(batch.input_ids.shape[0])
    return batch.loss_mask[:, 1:].sum(dim=1).to(torch.float32)


def _loss_sum(model: torch.nn.Module, batch: TokenBatch, weighting: Weighting) -> tuple[torch.Tensor, float]:
    """(weighted sum of the per-sample losses, sum of the weights): the batch loss is their ratio."""
    per_sample = sample_losses(model, batch)  # (B,)
    w = _row_weights(batch, weighting).to(device=per_sample.device, dtype=per_sample.dtype)
    return (per_sample * w).sum(), float(w.sum())


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
                chunks = _length_chunks(encoded, perm[start:start + regime.batch_size])
                parts = [encoded.batch(chunk).to(dev) for chunk in chunks]
                weight = sum(float(_row_weights(b, regime.weighting).sum()) for b in parts)
                opt.zero_grad(set_to_none=True)
                for part in parts:
                    total, _ = _loss_sum(model, part, regime.weighting)
                    (total / max(weight, 1.0)).backward()
                opt.step()
    finally:
        opt.zero_grad(set_to_none=True)
        model.requires_grad_(False)


MIN_CHUNK = 2
"""Smallest micro-batch :func:`_length_chunks` makes (measured on the demo's check: cuts down to 2 rows
that save a tenth of the padded tokens made a fine-tuning run about 30% faster than one padded batch)."""


def _length_chunks(encoded: EncodedTexts, rows: np.ndarray) -> list[np.ndarray]:
    """One optimizer batch as micro-batches of similar length, so that little of the work is padding.

    The batch's rows are sorted by length and cut where a cut saves the most padded tokens, recursively,
    while a cut removes at least a tenth of the part's padded tokens (and leaves each side ``MIN_CHUNK``
    rows or more). The gradient of the summed micro-batch losses over the batch's total weight is the
    batch's gradient: causal attention never looks at the right padding, so only the padding changes.
    """
    lengths = np.asarray([len(encoded.ids[r]) for r in rows], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    rows, lengths = np.asarray(rows)[order], lengths[order]

    def split(lo: int, hi: int) -> list[np.ndarray]:
        cost = (hi - lo) * int(lengths[hi - 1])
        best, best_cost = None, cost
        for cut in range(lo + MIN_CHUNK, hi - MIN_CHUNK + 1):
            c = (cut - lo) * int(lengths[cut - 1]) + (hi - cut) * int(lengths[hi - 1])
            if c < best_cost:
                best, best_cost = cut, c
        if best is None or best_cost > 0.9 * cost:
            return [rows[lo:hi]]
        return split(lo, best) + split(best, hi)

    return split(0, len(rows))
