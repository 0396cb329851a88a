"""The approximator's head ensembles: K small MLPs, or K linear (ridge) heads, each evaluated as one
batched computation.

A linear head is ``y = w · x + b``: parameters w (K, D), b (K,). The MLP heads are described below.

Each head is ``y = w2 · gelu(x W1 + b1) + b2`` with its own parameters; all K are stored stacked,
so one ``einsum`` evaluates the whole ensemble on a batch (no Python loop over heads or samples).
Initialisation and dropout draw from an explicit ``torch.Generator`` (library code never touches
the global RNG), which makes training bit-for-bit repeatable on the CPU for a seed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LINEAR_KEYS", "MLP_KEYS", "HeadEnsemble", "head_keys", "predict_numpy"]

MLP_KEYS = ("w1", "b1", "w2", "b2")
LINEAR_KEYS = ("w", "b")


def head_keys(params: dict[str, np.ndarray]) -> tuple[str, ...]:
    """The parameter names of the ensemble ``params`` holds (MLP or linear)."""
    return LINEAR_KEYS if "w" in params else MLP_KEYS


class HeadEnsemble(nn.Module):
    """K heads D -> H -> 1. Parameters: w1 (K, D, H), b1 (K, H), w2 (K, H), b2 (K,)."""

    def __init__(self, n_heads: int, in_dim: int, hidden_dim: int, dropout: float, generator: torch.Generator) -> None:
        super().__init__()
        self.n_heads, self.in_dim, self.hidden_dim, self.dropout = n_heads, in_dim, hidden_dim, dropout
        # nn.Linear's default (Kaiming-uniform with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        b_in, b_hid = 1.0 / math.sqrt(in_dim), 1.0 / math.sqrt(hidden_dim)
        self.w1 = nn.Parameter(torch.empty(n_heads, in_dim, hidden_dim).uniform_(-b_in, b_in, generator=generator))
        self.b1 = nn.Parameter(torch.empty(n_heads, hidden_dim).uniform_(-b_in, b_in, generator=generator))
        self.w2 = nn.Parameter(torch.empty(n_heads, hidden_dim).uniform_(-b_hid, b_hid, generator=generator))
        self.b2 = nn.Parameter(torch.zeros(n_heads))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: (B, D) -> (K, B) predictions in standardised label units.

        With ``generator`` given (training), inverted dropout is applied to the hidden layer with
        masks drawn from it; without, the heads are deterministic (evaluation).
        """
        xk = x.unsqueeze(0).expand(self.n_heads, -1, -1)  # (K, B, D), a view
        hidden = F.gelu(torch.baddbmm(self.b1.unsqueeze(1), xk, self.w1))  # (K, B, H)
        if generator is not None and self.dropout > 0.0:
            keep = torch.rand(hidden.shape, generator=generator) >= self.dropout
            hidden = hidden * keep / (1.0 - self.dropout)
        return torch.bmm(hidden, self.w2.unsqueeze(-1)).squeeze(-1) + self.b2.unsqueeze(1)  # (K, B)


def predict_numpy(
    params: dict[str, np.ndarray], x: np.ndarray, *, chunk_rows: int = 65536
) -> np.ndarray:
    """Evaluate stacked head parameters on float16/float32 embeddings without autograd.

    x: (N, D). Returns (K, N) float32. Heads are fused into one (D, K·H) matmul per chunk of rows —
    the fast path for re-scoring a whole pool from cached embeddings. Linear heads are one (D, K) matmul.
    """
    if "w" in params:
        w = np.asarray(params["w"], dtype=np.float32)  # (K, D)
        b = np.asarray(params["b"], dtype=np.float32)  # (K,)
        lin = np.empty((w.shape[0], x.shape[0]), dtype=np.float32)
        for start in range(0, x.shape[0], chunk_rows):
            rows = np.asarray(x[start : start + chunk_rows], dtype=np.float32)
            lin[:, start : start + rows.shape[0]] = (rows @ w.T).T + b[:, None]
        return lin
    w1 = torch.as_tensor(params["w1"], dtype=torch.float32)  # (K, D, H)
    k, d, h = w1.shape
    w1_fused = w1.permute(1, 0, 2).reshape(d, k * h).contiguous()  # (D, K·H)
    b1 = torch.as_tensor(params["b1"], dtype=torch.float32).reshape(1, k * h)
    w2 = torch.as_tensor(params["w2"], dtype=torch.float32)  # (K, H)
    b2 = torch.as_tensor(params["b2"], dtype=torch.float32)  # (K,)
    n = x.shape[0]
    out = torch.empty((k, n), dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, n, chunk_rows):
            xb = torch.as_tensor(np.ascontiguousarray(x[start : start + chunk_rows]), dtype=torch.float32)
            hidden = F.gelu(torch.addmm(b1, xb, w1_fused)).view(-1, k, h)  # (b, K, H)
            out[:, start : start + xb.shape[0]] = (hidden * w2).sum(-1).T + b2.unsqueeze(1)
    return out.numpy()
