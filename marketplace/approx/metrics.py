"""Agreement between predicted and exact LinFiK on held-out labels.

Spearman and Pearson are computed here with numpy (average ranks for ties); Kendall's tau-b comes
from scipy, the reference the others are tested against. A constant input carries no ranking
information: its correlations are reported as 0.0 rather than NaN (so gates and JSON stay simple).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import kendalltau, rankdata

from marketplace.errors import ValidationError

__all__ = ["Agreement", "agreement", "kendall", "pearson", "precision_at_top", "spearman"]


def _check(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(true, dtype=np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValidationError(f"predictions ({p.shape[0]}) and labels ({t.shape[0]}) differ in length")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise ValidationError("predictions or labels contain NaN or infinity; drop or fix those rows")
    return p, t


def pearson(pred: np.ndarray, true: np.ndarray) -> float:
    p, t = _check(pred, true)
    if p.size < 2:
        return 0.0
    pc, tc = p - p.mean(), t - t.mean()
    denom = math.sqrt(float(pc @ pc) * float(tc @ tc))
    return float(pc @ tc / denom) if denom > 0 else 0.0


def spearman(pred: np.ndarray, true: np.ndarray) -> float:
    """Pearson correlation of average ranks (Spearman's rho with ties)."""
    p, t = _check(pred, true)
    return pearson(rankdata(p), rankdata(t))


def kendall(pred: np.ndarray, true: np.ndarray) -> float:
    p, t = _check(pred, true)
    if p.size < 2:
        return 0.0
    tau = kendalltau(p, t).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def precision_at_top(pred: np.ndarray, true: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the true top ``fraction`` found in the predicted top ``fraction`` (k = ceil(f·n)).

    Ties are broken by position (stable sort), identically for both sides.
    """
    p, t = _check(pred, true)
    if not 0.0 < fraction <= 1.0:
        raise ValidationError(f"fraction {fraction} must lie in (0, 1]")
    if p.size == 0:
        return 0.0
    k = max(1, math.ceil(fraction * p.size))
    top_pred = np.argsort(-p, kind="stable")[:k]
    top_true = np.argsort(-t, kind="stable")[:k]
    return float(np.intersect1d(top_pred, top_true).size / k)


@dataclass(frozen=True)
class Agreement:
    spearman: float
    pearson: float
    kendall: float
    precision_at_10: float
    n: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in asdict(self).items()}


def agreement(pred: np.ndarray, true: np.ndarray) -> Agreement:
    """All four held-out metrics at once."""
    p, t = _check(pred, true)
    return Agreement(
        spearman=spearman(p, t),
        pearson=pearson(p, t),
        kendall=kendall(p, t),
        precision_at_10=precision_at_top(p, t, 0.1),
        n=int(p.size),
    )
