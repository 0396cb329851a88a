"""How good are the labels? LoGra LinFiK against exact LinFiK and against the real effect of a step.

For a target model, a target set Y and samples x_1..x_N this measures, all with identity
preconditioning:

- ``logra``: LinFiK from LoGra-projected gradients at the given ranks (what ``marketplace label``
  stores);
- ``exact_watched``: η⟨ḡ_Y, g(x)⟩ from exact full-dimensional gradients of the watched layers' weights
  (what LoGra approximates);
- ``exact_all``: the same over *all* parameters (what watching only the projections costs);
- ``drop_all`` / ``drop_watched``: the measured drop of the mean target loss L_Y after one SGD step
  θ ← θ − η ∇ℓ(x) on x alone, over all parameters / over the watched weights only. Measured in
  float64 (a float32 loss difference would drown small-η drops in rounding).

and reports Spearman correlations between them. ``benchmarks/linfik_quality.py`` runs it on the demo
model; ``tests/valuation/test_linfik_quality.py`` gates it on a small trained model.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from marketplace.valuation.config import ProjectionConfig
from marketplace.valuation.exact import parameter_names_of_layers
from marketplace.valuation.gradients import compute_text_gradients
from marketplace.valuation.linfik import build_query, score_against_query
from marketplace.valuation.projection import Projection, build_projection
from marketplace.valuation.target_model import TargetModel
from marketplace.valuation.tokenization import EncodedTexts, encode_texts, per_sample_loss

__all__ = ["QualityReport", "evaluate_linfik_quality", "spearman"]

log = logging.getLogger(__name__)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (scipy; NaN for a constant input). The approximator's metrics have their own
    (marketplace.approx.metrics), which this package cannot import: approx builds on valuation."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


@dataclass
class QualityReport:
    n_samples: int
    n_target: int
    eta: float
    rank_in: int
    rank_out: int
    projected_dim: int
    watched_params: int
    all_params: int
    spearman: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)


def _target_loss(model: torch.nn.Module, params: dict[str, torch.Tensor], batch_ids: torch.Tensor,
                 attn: torch.Tensor, mask: torch.Tensor) -> float:
    from torch.func import functional_call

    with torch.no_grad():
        logits = functional_call(model, params, args=(), kwargs={"input_ids": batch_ids, "attention_mask": attn,
                                                                  "use_cache": False}).logits
        return float(per_sample_loss(logits, batch_ids, mask).mean())


def _one_gradient(
    model: torch.nn.Module, params: list[torch.Tensor], enc: EncodedTexts, row: int
) -> list[torch.Tensor]:
    batch = enc.batch([row]).to(params[0].device)
    with torch.enable_grad():
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
        loss = per_sample_loss(logits, batch.input_ids, batch.loss_mask)[0]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def evaluate_linfik_quality(
    target: TargetModel,
    texts: Sequence[str],
    target_texts: Sequence[str],
    *,
    projection_config: ProjectionConfig | None = None,
    eta: float = 1e-3,
    max_length: int = 128,
    batch_size: int = 8,
    drop_scopes: tuple[str, ...] = ("all", "watched"),
) -> QualityReport:
    """Compare LoGra LinFiK with exact LinFiK and with measured one-step loss drops (see module doc).

    ``drop_scopes`` picks which one-step drops to measure (each costs one float64 forward of the
    target set per sample): ``all`` parameters and/or the ``watched`` weights; () measures none.
    """
    unknown = set(drop_scopes) - {"all", "watched"}
    if unknown:
        raise ValueError(f"drop_scopes may hold 'all' and 'watched', not {sorted(unknown)}")
    proj_cfg = projection_config or ProjectionConfig()
    projection = build_projection(target.model, proj_cfg)
    report = QualityReport(n_samples=len(texts), n_target=len(target_texts), eta=eta, rank_in=proj_cfg.rank_in,
                           rank_out=proj_cfg.rank_out, projected_dim=projection.dim, watched_params=0, all_params=0)

    t0 = time.perf_counter()
    g_target = compute_text_gradients(target, projection, target_texts, None, max_length=max_length,
                                      batch_size=batch_size).grads
    g_train = compute_text_gradients(target, projection, texts, None, max_length=max_length,
                                     batch_size=batch_size).grads
    query = build_query(g_target.double().mean(0), projection, eta=eta, preconditioner="identity")
    scores = {"logra": score_against_query(g_train, query).double().numpy()}
    report.seconds["logra"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    scores.update(_exact_scores(target, projection, texts, target_texts, eta, max_length, drop_scopes, report))
    report.seconds["exact_and_drops"] = time.perf_counter() - t0
    report.scores = {k: v.tolist() for k, v in scores.items()}
    pairs = [("logra", "exact_watched"), ("logra", "exact_all"), ("exact_watched", "exact_all")]
    if "all" in drop_scopes:
        pairs += [("logra", "drop_all"), ("exact_all", "drop_all")]
    if "watched" in drop_scopes:
        pairs += [("logra", "drop_watched"), ("exact_watched", "drop_watched")]
    report.spearman = {f"{a}~{b}": spearman(scores[a], scores[b]) for a, b in pairs}
    log.info("LinFiK quality: %s", {k: round(v, 4) for k, v in report.spearman.items()})
    return report


def _exact_scores(target: TargetModel, projection: Projection, texts: Sequence[str], target_texts: Sequence[str],
                  eta: float, max_length: int, drop_scopes: tuple[str, ...],
                  report: QualityReport) -> dict[str, np.ndarray]:
    """``exact_watched``, ``exact_all`` and the asked-for one-step drops, (N,) float64 each, from exact
    gradients in float64 on a private copy of the model (the caller's model is untouched). Records the
    parameter counts on ``report``."""
    model64 = copy.deepcopy(target.model).double().eval()
    named = dict(model64.named_parameters())
    names = list(named)
    watched = set(parameter_names_of_layers(projection))
    is_watched = [n in watched for n in names]
    report.watched_params = sum(named[n].numel() for n in names if n in watched)
    report.all_params = sum(p.numel() for p in named.values())
    params = [named[n] for n in names]
    for p in params:
        p.requires_grad_(True)
    limit = min(max_length, target.context_length)
    enc_t = encode_texts(target.tokenizer, target_texts, None, max_length=limit)
    enc_x = encode_texts(target.tokenizer, texts, None, max_length=limit)
    mean_t = [torch.zeros_like(p) for p in params]
    for row in range(len(target_texts)):
        for acc, g in zip(mean_t, _one_gradient(model64, params, enc_t, row), strict=True):
            acc += g / len(target_texts)
    target_batch = enc_t.batch(range(len(target_texts))).to(target.device)
    base = {n: p.detach() for n, p in named.items()}

    def target_loss(weights: dict[str, torch.Tensor]) -> float:
        return _target_loss(model64, weights, target_batch.input_ids, target_batch.attention_mask,
                            target_batch.loss_mask)

    base_loss = target_loss(base) if drop_scopes else 0.0
    exact_w, exact_a, drop_a, drop_w = [], [], [], []
    for row in range(len(texts)):
        g_x = _one_gradient(model64, params, enc_x, row)
        dots = [float((gi * ti).sum()) for gi, ti in zip(g_x, mean_t, strict=True)]
        exact_a.append(eta * sum(dots))
        exact_w.append(eta * sum(d for d, w in zip(dots, is_watched, strict=True) if w))
        if "all" in drop_scopes:
            drop_a.append(base_loss - target_loss({n: base[n] - eta * gi for n, gi in zip(names, g_x, strict=True)}))
        if "watched" in drop_scopes:
            drop_w.append(base_loss - target_loss({n: (base[n] - eta * gi if w else base[n])
                                                   for n, gi, w in zip(names, g_x, is_watched, strict=True)}))
    scores = {"exact_watched": np.array(exact_w), "exact_all": np.array(exact_a)}
    if "all" in drop_scopes:
        scores["drop_all"] = np.array(drop_a)
    if "watched" in drop_scopes:
        scores["drop_watched"] = np.array(drop_w)
    return scores
