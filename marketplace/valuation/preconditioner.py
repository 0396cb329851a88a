"""Block-diagonal (per watched layer) preconditioners in LoGra's projected space: q_l = H_l⁻¹ ḡ_l.

Only H⁻¹ applied to the one target vector is ever needed, so nothing is inverted:

- **fisher** (the LoGra paper's "raw" Hessian): H_l = (1/N) Σ_i g̃_{i,l} g̃_{i,l}ᵀ + λ I over the N
  labeled *train* gradients (d_l × d_l, d_l = r_out·r_in), solved by Cholesky in float64.
- **kfac**: H_l ≈ S_l ⊗ A_l (row-major vec of G̃ = Σ_t δ̃ x̃ᵀ gives vec(δ̃ x̃ᵀ) = δ̃ ⊗ x̃), with
  A_l = mean over real train tokens of x̃ x̃ᵀ (r_in × r_in) and S_l = mean over train samples of
  Σ_t δ̃ δ̃ᵀ (r_out × r_out) — dropping cross-token terms, E[vec G vec Gᵀ] ≈ S ⊗ A. Applied through
  the eigendecompositions S = Q_S Λ_S Q_Sᵀ, A = Q_A Λ_A Q_Aᵀ:
  H⁻¹ vec(M) = vec(Q_S [(Q_Sᵀ M Q_A) / (λ_S λ_Aᵀ + λ)] Q_Aᵀ).

Damping in both: λ = damping_ratio × mean eigenvalue of the undamped H_l (trace / d for fisher;
mean(Λ_S)·mean(Λ_A) for kfac). A layer whose H is all zero (no signal) keeps q_l = ḡ_l / λ_floor
with a tiny floor, i.e. it is effectively the identity up to scale, and a warning is logged.
"""

from __future__ import annotations

import logging

import torch

__all__ = ["damped_fisher_solve", "kfac_solve"]

log = logging.getLogger(__name__)

_TINY = 1e-30


def damped_fisher_solve(
    gram_sum: torch.Tensor, n_samples: int, rhs: torch.Tensor, damping_ratio: float
) -> torch.Tensor:
    """(gram_sum / n + λI)⁻¹ rhs with λ = damping_ratio · trace(gram_sum / n) / d.

    gram_sum (d, d) = Σ_i g̃_i g̃_iᵀ; rhs (d,). Float64 throughout; returns (d,) float64.
    """
    if n_samples <= 0:
        raise ValueError("the Fisher preconditioner needs at least one train gradient")
    h = gram_sum.to(torch.float64) / n_samples
    d = h.shape[0]
    lam = damping_ratio * float(torch.diagonal(h).sum()) / d
    if lam <= _TINY:
        log.warning("projected Fisher of a layer is zero (no gradient signal); using the identity there")
        return rhs.to(torch.float64)
    h = h + lam * torch.eye(d, dtype=torch.float64, device=h.device)
    chol = torch.linalg.cholesky(h)
    return torch.cholesky_solve(rhs.to(torch.float64).reshape(d, 1), chol).reshape(d)


def kfac_solve(
    a_mean: torch.Tensor, s_mean: torch.Tensor, rhs: torch.Tensor, damping_ratio: float
) -> torch.Tensor:
    """(S ⊗ A + λI)⁻¹ rhs, rhs the row-major flattening of an (r_out, r_in) matrix. Returns (r_out·r_in,).

    a_mean (r_in, r_in), s_mean (r_out, r_out): symmetric PSD. λ = damping_ratio · mean(Λ_S) · mean(Λ_A).
    """
    a = a_mean.to(torch.float64)
    s = s_mean.to(torch.float64)
    r_in, r_out = a.shape[0], s.shape[0]
    lam_a, q_a = torch.linalg.eigh((a + a.T) / 2)
    lam_s, q_s = torch.linalg.eigh((s + s.T) / 2)
    lam_a, lam_s = lam_a.clamp_min(0.0), lam_s.clamp_min(0.0)
    lam = damping_ratio * float(lam_a.mean()) * float(lam_s.mean())
    if lam <= _TINY:
        log.warning("K-FAC factors of a layer are zero (no gradient signal); using the identity there")
        return rhs.to(torch.float64)
    m = rhs.to(torch.float64).reshape(r_out, r_in)
    rotated = q_s.T @ m @ q_a  # (r_out, r_in) in the eigenbases
    rotated = rotated / (lam_s[:, None] * lam_a[None, :] + lam)
    return (q_s @ rotated @ q_a.T).reshape(-1)
