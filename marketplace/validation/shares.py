"""The share arithmetic of a payout validation (pure numpy; every array is (P,), one entry per provider).

- payout share p_i = amount_i / sum(amount)
- ideal share q_i = max(gain_i, 0) * n_i / sum_j max(gain_j, 0) * n_j, n_i the provider's payable samples:
  what they would earn if the budget followed the measured gain per sample; undefined (None) when no
  provider with payable samples has a positive gain
- misallocated share = total variation distance 0.5 * sum |p_i - q_i|: the fraction of the budget that
  would have to move to reach the ideal split (0: perfect, 1: paid entirely to the wrong providers)
- harmful share = sum of p_i over providers whose gain is below ``-margin`` (margin 0: any negative
  gain; margin = the gain's standard deviation: negative beyond the seed noise)

An unmeasured gain is NaN: it earns no ideal share and is never counted harmful.
"""

from __future__ import annotations

import numpy as np

__all__ = ["harmful_share", "ideal_shares", "payout_shares", "total_variation", "within_noise"]


def payout_shares(amounts_minor: np.ndarray) -> np.ndarray | None:
    """Each provider's fraction of the amount paid; None when nothing was paid."""
    a = np.asarray(amounts_minor, dtype=np.float64)
    total = a.sum()
    return a / total if total > 0 else None


def ideal_shares(gains: np.ndarray, n_samples: np.ndarray) -> np.ndarray | None:
    """Shares proportional to max(gain, 0) x payable samples; None when every weight is 0."""
    g = np.nan_to_num(np.asarray(gains, dtype=np.float64), nan=0.0)
    w = np.clip(g, 0.0, None) * np.asarray(n_samples, dtype=np.float64)
    total = w.sum()
    return w / total if total > 0 else None


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """0.5 * sum |p - q| of two share vectors of the same length."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"share vectors differ in shape: {p.shape} vs {q.shape}")
    return float(0.5 * np.abs(p - q).sum())


def harmful_share(shares: np.ndarray, gains: np.ndarray, margin: np.ndarray | float = 0.0) -> float:
    """The part of ``shares`` paid to providers with gain < -margin (NaN gains never count)."""
    g = np.asarray(gains, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        harmful = g < -np.asarray(margin, dtype=np.float64)
    return float(np.asarray(shares, dtype=np.float64)[harmful].sum())


def within_noise(gains: np.ndarray, sds: np.ndarray) -> np.ndarray:
    """(P,) bool: |gain| <= sd, i.e. the sign of the gain is not settled by the seeds (NaN: False)."""
    g = np.asarray(gains, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.abs(g) <= np.asarray(sds, dtype=np.float64)
