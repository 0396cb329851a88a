"""Per-sample token losses that project only the positions a loss is taken on.

A causal LM's loss needs logits only where a target token is predicted. On a padded batch of short texts
that is often under half of the (B, T, V) logits a full forward pass makes, and on a small model the output
projection, its log-softmax and their backward pass are most of the work. :func:`sample_losses` runs the
model's body once, gathers the hidden states at the predicting positions (position t predicts token t+1,
for every t+1 in the target mask) and applies the output layer to those alone.

That "last hidden state of the body, then the output embeddings" gives the model's logits holds for GPT-2,
Llama and most decoder LMs, but not for every one (some soft-cap or scale their logits). It is therefore
checked once per model class and configuration, on the first batch, against the full forward pass; a model
for which it does not hold (or that has no separate body and head) always takes the full pass. Either way the
result is :func:`~marketplace.valuation.tokenization.per_sample_loss` of the full logits, up to float
rounding.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from typing import Any

import torch
import torch.nn.functional as F

from marketplace.valuation.tokenization import TokenBatch, per_sample_loss

__all__ = ["full_sample_losses", "sample_losses"]

log = logging.getLogger(__name__)

#: model class + config digest -> whether the gathered path reproduces the full logits
_CHECKED: dict[str, bool] = {}
#: model object -> its key above, so the config is serialised and hashed once per model, not per batch
_KEYS: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()
_RTOL, _ATOL = 1e-4, 1e-5


def full_sample_losses(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    """(B,) mean token loss per sample from the model's full (B, T, V) logits."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return per_sample_loss(logits, batch.input_ids, batch.loss_mask)


def _body_and_head(model: Any) -> tuple[Any, Any] | None:
    body = getattr(model, "base_model", None)
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if body is None or body is model or head is None:
        return None
    return body, head


def _gathered(body: Any, head: Any, batch: TokenBatch) -> torch.Tensor:
    hidden = body(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).last_hidden_state
    mask = batch.loss_mask[:, 1:]  # (B, T-1): token t+1 is a target, predicted at position t
    rows, cols = mask.nonzero(as_tuple=True)
    logits = head(hidden[rows, cols])  # (N, V), only the predicting positions
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    ce = F.cross_entropy(logits, batch.input_ids[rows, cols + 1], reduction="none")  # (N,)
    sums = torch.zeros(mask.shape[0], dtype=ce.dtype, device=ce.device).index_add(0, rows, ce)
    return sums / mask.sum(dim=1).to(ce.dtype).clamp_min(1.0)


def _key(model: torch.nn.Module) -> str:
    cached = _KEYS.get(model)
    if cached is not None:
        return cached
    config: Any = getattr(model, "config", None)
    to_json = getattr(config, "to_json_string", None)
    text = to_json() if callable(to_json) else repr(config)
    key = f"{type(model).__module__}.{type(model).__qualname__}:{hashlib.sha256(text.encode()).hexdigest()}"
    _KEYS[model] = key
    return key


def sample_losses(model: torch.nn.Module, batch: TokenBatch) -> torch.Tensor:
    """(B,) mean loss per sample over its target tokens (nats/token), with gradients when enabled;
    projects only the predicting positions when that is checked to equal the full pass (module doc)."""
    parts = _body_and_head(model)
    if parts is None:
        return full_sample_losses(model, batch)
    key = _key(model)
    if key not in _CHECKED:
        with torch.no_grad():
            full = full_sample_losses(model, batch)
            gathered = _gathered(*parts, batch)
        ok = bool(torch.allclose(gathered, full, rtol=_RTOL, atol=_ATOL))
        _CHECKED[key] = ok
        if not ok:
            log.info("%s: logits are not the output layer of the last hidden state; using full logits",
                     type(model).__qualname__)
    if not _CHECKED[key]:
        return full_sample_losses(model, batch)
    return _gathered(*parts, batch)
