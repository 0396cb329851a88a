"""A scoring cascade: a fast approximator scores every sample, a slow one re-scores those that matter.

Rule (:class:`CascadeRule`), over the N fast scores s of a pool:

- **top**: the ⌈q·N⌉ samples with the highest s (ties broken by position, lower first): the samples
  that are paid most, where a ranking error costs most;
- **band**: the ⌈b·N⌉ samples whose s is nearest the pricing threshold t (|s − t| smallest, ties by
  position): pricing clips scores at t = 0, so these are the samples whose payable/unpayable call the
  fast model is least sure of.

The re-scored set R is the union of the two (at most ⌈q·N⌉ + ⌈b·N⌉ samples, fewer when they overlap);
the cascade's score is the slow model's on R and the fast model's elsewhere. Both approximators
predict LinFiK in the label set's units, so the two kinds of score are on one scale. The cost is N fast
scores plus |R| slow ones; benchmarks/results/encoders.md measures what it buys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from marketplace.errors import ValidationError

__all__ = ["CascadeRule", "combine_cascade", "pick_for_rescoring"]


@dataclass(frozen=True)
class CascadeRule:
    top_fraction: float  # q in [0, 1]: share of the pool re-scored from the top of the fast ranking
    band_fraction: float  # b in [0, 1]: share of the pool re-scored around the threshold
    threshold: float = 0.0  # t, in label units: where pricing starts to pay (scores are clipped at 0)

    def __post_init__(self) -> None:
        for name in ("top_fraction", "band_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValidationError(f"cascade {name} must be a fraction in [0, 1], got {value}")
        if not math.isfinite(self.threshold):
            raise ValidationError(f"cascade threshold must be a finite score, got {self.threshold}")


def pick_for_rescoring(fast_scores: np.ndarray, rule: CascadeRule) -> np.ndarray:
    """Positions (sorted, int64) of the samples ``rule`` sends to the slow model. fast_scores: (N,)."""
    s = np.asarray(fast_scores, dtype=np.float64)
    if s.ndim != 1 or not np.isfinite(s).all():
        raise ValidationError("the cascade needs a finite 1-d array of fast scores")
    n = s.size
    pos = np.arange(n)
    k_top = min(n, math.ceil(rule.top_fraction * n))
    k_band = min(n, math.ceil(rule.band_fraction * n))
    top = np.lexsort((pos, -s))[:k_top]  # by score descending, then position
    band = np.lexsort((pos, np.abs(s - rule.threshold)))[:k_band]  # nearest the threshold first
    return np.union1d(top, band).astype(np.int64)


def combine_cascade(fast_scores: np.ndarray, picked: np.ndarray, slow_scores: np.ndarray) -> np.ndarray:
    """(N,) float64: ``slow_scores`` (aligned with ``picked``) at ``picked``, ``fast_scores`` elsewhere."""
    out = np.array(fast_scores, dtype=np.float64, copy=True)
    if picked.shape != np.shape(slow_scores):
        raise ValidationError(f"{picked.size} re-scored positions but {np.size(slow_scores)} slow scores")
    out[picked] = slow_scores
    return out
