"""LinFiK scores from projected gradients (docs/valuation.md; Pan et al. 2025).

    LinFiK(x) = Σ_c η_c ⟨H_c⁻¹ ḡ_Y,c , g_c(x)⟩        (g_c(x) → g_c(x)/‖g_c(x)‖ with ``cosine``)

ḡ_Y,c is the mean projected gradient of the target set at checkpoint c. Because it is computed once,
the per-checkpoint *query* q_c = η_c H_c⁻¹ ḡ_Y,c is built once (:func:`build_query`) and scoring a
sample is one dot product per checkpoint (:func:`score_against_query`). Positive = the step on x
lowers the target loss = valuable. With the default η = 1e-3 the score is in nats/token of predicted
target-loss drop.

With ``reference="pool"`` (LinFiKConfig.reference) ḡ_Y,c is replaced by ḡ_Y,c − ḡ_pool,c, the mean
projected gradient of the labeled train samples: q_c = η_c H_c⁻¹ (ḡ_Y,c − ḡ_pool,c).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from marketplace.valuation.config import Preconditioner
from marketplace.valuation.logra import KFACStats
from marketplace.valuation.preconditioner import damped_fisher_solve, kfac_solve
from marketplace.valuation.projection import Projection

__all__ = ["LinFiKQuery", "build_query", "score_against_query"]

log = logging.getLogger(__name__)

# (layer index, layer slice) -> Σ_i g̃_{i,l} g̃_{i,l}ᵀ over the train gradients, and N.
GramSource = Callable[[int, slice], tuple[torch.Tensor, int]]


@dataclass(frozen=True)
class LinFiKQuery:
    """q = η H⁻¹ ḡ_Y for one checkpoint: (D,) float32, plus what it was built from."""

    vector: torch.Tensor  # (D,) float32
    eta: float
    preconditioner: Preconditioner
    projection_digest: str


def build_query(
    target_mean: torch.Tensor,
    projection: Projection,
    *,
    eta: float,
    preconditioner: Preconditioner,
    damping_ratio: float = 0.1,
    gram: GramSource | None = None,
    kfac: KFACStats | None = None,
    reference_mean: torch.Tensor | None = None,
) -> LinFiKQuery:
    """q = η · H⁻¹ ḡ_Y (or η · H⁻¹ (ḡ_Y − ḡ_ref) with ``reference_mean``), block-diagonal over the
    watched layers.

    ``target_mean`` (D,) is ḡ_Y. ``gram`` (fisher) yields each layer's train Gram sum on demand, so
    only one d_l × d_l matrix is in memory at a time; ``kfac`` holds the train K-FAC sums.
    ``reference_mean`` (D,): ḡ_ref, subtracted from ḡ_Y before H⁻¹ (the pool reference, the mean
    labeled train gradient); None for plain LinFiK.
    """
    g = target_mean.to(torch.float64)
    if reference_mean is not None:
        if reference_mean.shape != g.shape:
            raise ValueError(f"reference mean {tuple(reference_mean.shape)} and target mean {tuple(g.shape)} "
                             "differ in shape; both must come from the same projection")
        g = g - reference_mean.to(device=g.device, dtype=torch.float64)
    if preconditioner == "identity":
        q = g
    elif preconditioner == "fisher":
        if gram is None:
            raise ValueError("the fisher preconditioner needs the train gradients' Gram matrices")
        parts = []
        for idx, sl in enumerate(projection.layer_slices()):
            gram_sum, n = gram(idx, sl)
            parts.append(damped_fisher_solve(gram_sum, n, g[sl], damping_ratio))
        q = torch.cat(parts)
    elif preconditioner == "kfac":
        if kfac is None or kfac.n_samples == 0 or kfac.n_tokens == 0:
            raise ValueError("the kfac preconditioner needs K-FAC statistics of the train gradients")
        parts = []
        for lp, sl in zip(projection.layers, projection.layer_slices(), strict=True):
            name = lp.layer.name
            a_mean = kfac.a_sum[name] / kfac.n_tokens  # (r_in, r_in)
            s_mean = kfac.s_sum[name] / kfac.n_samples  # (r_out, r_out)
            parts.append(kfac_solve(a_mean, s_mean, g[sl], damping_ratio))
        q = torch.cat(parts)
    else:  # pragma: no cover - Literal guards this; kept for a clear message if it ever drifts
        raise ValueError(f"unknown preconditioner {preconditioner!r}; use identity, fisher or kfac")
    return LinFiKQuery(
        vector=(eta * q).to(torch.float32),
        eta=eta,
        preconditioner=preconditioner,
        projection_digest=projection.digest(),
    )


def score_against_query(grads: torch.Tensor, query: LinFiKQuery, *, cosine: bool = False) -> torch.Tensor:
    """⟨q, g(x)⟩ for each row of ``grads`` (N, D) → (N,) float32. ``cosine`` divides by ‖g(x)‖."""
    g = grads.to(torch.float32)
    scores = g @ query.vector  # (N,)
    if cosine:
        norms = g.norm(dim=1)
        scores = torch.where(norms > 0, scores / norms.clamp_min(1e-30), torch.zeros_like(scores))
    return scores
