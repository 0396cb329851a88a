"""Text → padded token batches with a loss mask, and the per-sample loss both LoGra and the oracles use.

Loss convention (docs/valuation.md): ℓ(x) = mean next-token cross-entropy over the sample's *target*
tokens. Target tokens are every real token except the first (nothing predicts it) and, for a
prompt/response sample, every token that starts inside the prompt (``start offset < prompt_chars``,
from the fast tokenizer's offset mapping; the separator after the prompt counts as response).
Padding is on the right and masked. A sample whose mask is empty (a prompt longer than
``max_length``) has ℓ = 0 and therefore a zero gradient and a zero score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["EncodedTexts", "TokenBatch", "encode_texts", "length_factor", "loss_token_counts", "per_sample_loss",
           "token_length_factor"]


@dataclass(frozen=True)
class TokenBatch:
    """One padded batch. Shapes: input_ids, attention_mask, loss_mask all (B, T)."""

    input_ids: torch.Tensor  # (B, T) int64
    attention_mask: torch.Tensor  # (B, T) int64, 1 = real token
    loss_mask: torch.Tensor  # (B, T) bool, True where the token is a prediction *target*

    def to(self, device: torch.device) -> TokenBatch:
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device), self.loss_mask.to(device))

    @property
    def n_samples(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass(frozen=True)
class EncodedTexts:
    """Tokenised texts, unpadded: per sample a token array and a target mask of the same length."""

    ids: list[np.ndarray]  # each (L_i,) int64
    targets: list[np.ndarray]  # each (L_i,) bool

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(a) for a in self.ids), dtype=np.int64, count=len(self.ids))

    @property
    def target_counts(self) -> np.ndarray:
        """(N,) the number of tokens each sample's loss is taken over (the target mask's count)."""
        return np.fromiter((int(t.sum()) for t in self.targets), dtype=np.int64, count=len(self.targets))

    def batch(self, rows: Sequence[int] | np.ndarray) -> TokenBatch:
        """Right-padded batch of the given rows, in that order."""
        rows = list(rows)
        max_len = max(1, max(len(self.ids[r]) for r in rows))
        ids = np.zeros((len(rows), max_len), dtype=np.int64)
        attn = np.zeros((len(rows), max_len), dtype=np.int64)
        tgt = np.zeros((len(rows), max_len), dtype=bool)
        for b, r in enumerate(rows):
            n = len(self.ids[r])
            ids[b, :n] = self.ids[r]
            attn[b, :n] = 1
            tgt[b, :n] = self.targets[r]
        return TokenBatch(torch.from_numpy(ids), torch.from_numpy(attn), torch.from_numpy(tgt))


def encode_texts(
    tokenizer: Any, texts: Sequence[str], prompt_chars: Sequence[int | None] | None, *, max_length: int
) -> EncodedTexts:
    """Tokenise (fast tokenizer, truncation at ``max_length`` tokens) and build target masks."""
    if prompt_chars is not None and len(prompt_chars) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(prompt_chars)} prompt_chars")
    enc = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        add_special_tokens=True,
    )
    ids_out: list[np.ndarray] = []
    tgt_out: list[np.ndarray] = []
    for i, (ids, offsets) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], strict=True)):
        ids_arr = np.asarray(ids, dtype=np.int64)
        tgt = np.ones(len(ids_arr), dtype=bool)
        if len(tgt):
            tgt[0] = False  # the first token is never predicted
        pc = prompt_chars[i] if prompt_chars is not None else None
        if pc is not None and pc > 0 and len(ids_arr):
            starts = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)[:, 0]
            tgt &= starts >= pc
        ids_out.append(ids_arr)
        tgt_out.append(tgt)
    return EncodedTexts(ids=ids_out, targets=tgt_out)


def token_length_factor(
    tokenizer: Any, texts: Sequence[str], prompt_chars: Sequence[int | None] | None, *, max_length: int,
    context_length: int,
) -> np.ndarray:
    """T(x)/L per text, (N,) float64: the factor of token-weighted LinFiK (``weighting="token"``).

    T(x) is the number of tokens x's loss is taken over, counted exactly as the gradients' loss counts
    them (:func:`encode_texts`: first token and prompt masked, truncated at min(L, ``context_length``));
    L is the label config's ``max_length``. The labeler multiplies each plain LinFiK score by it and a
    token-weighted approximator multiplies its per-token prediction by it, so both use this function.
    """
    counts = loss_token_counts(tokenizer, texts, prompt_chars, truncation=min(max_length, context_length))
    return length_factor(counts, max_length)


def loss_token_counts(
    tokenizer: Any, texts: Sequence[str], prompt_chars: Sequence[int | None] | None, *, truncation: int
) -> np.ndarray:
    """T(x) per text, (N,) int64: the tokens its loss is taken over after truncation at ``truncation``
    tokens (0 when a prompt fills it)."""
    if not len(texts):
        return np.zeros(0, dtype=np.int64)
    return encode_texts(tokenizer, texts, prompt_chars, max_length=truncation).target_counts


def length_factor(counts: np.ndarray, max_length: int) -> np.ndarray:
    """T(x)/L from token counts T(x) already known (e.g. cached): (N,) float64."""
    return np.asarray(counts).astype(np.float64) / max_length


def per_sample_loss(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy per sample over its target tokens. Returns (B,) in nats/token.

    logits (B, T, V); input_ids (B, T); loss_mask (B, T) marks target tokens (position t is
    predicted by logits at t-1). Logits in half precision are upcast to float32 first.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    pred = logits[:, :-1, :]  # (B, T-1, V)
    target = input_ids[:, 1:]  # (B, T-1)
    mask = loss_mask[:, 1:].to(pred.dtype)  # (B, T-1)
    ce = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), reduction="none")
    ce = ce.view(target.shape) * mask  # (B, T-1)
    return ce.sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
