"""Ridge heads: the leave-one-out path, the bootstrap fits, and the features they see."""

from __future__ import annotations

import numpy as np

from marketplace.approx.config import ApproxConfig
from marketplace.approx.feature_scaling import apply_feature_scaling, fit_feature_scaling
from marketplace.approx.heads import predict_numpy
from marketplace.approx.metrics import spearman
from marketplace.approx.text_stats import N_TEXT_STATS
from marketplace.approx.train import RIDGE_ALPHAS, _ridge_path, _weighted_ridge, fit_ridge


def _data(n: int, d: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    beta = rng.normal(size=d) / np.sqrt(d)
    return x, x @ beta + 0.3 + noise * rng.normal(size=n)


def test_leave_one_out_error_equals_refitting_without_each_row() -> None:
    x, z = _data(40, 12, 0.5)
    _, history = _ridge_path(x, z)
    for i in (0, 6, 14):  # three penalties of the grid
        alpha = float(RIDGE_ALPHAS[i])
        errors = []
        for r in range(x.shape[0]):
            keep = np.arange(x.shape[0]) != r
            beta, b = _weighted_ridge(x[keep], z[keep], np.ones(keep.sum()), alpha)
            errors.append(z[r] - (x[r] @ beta + b))
        np.testing.assert_allclose(history[i].val_mse, np.mean(np.square(errors)), rtol=1e-8)


def test_primal_and_dual_solutions_agree_and_weights_count_rows() -> None:
    x, z = _data(30, 50, 0.1)  # more columns than rows: the dual form
    beta_dual, b_dual = _weighted_ridge(x, z, np.ones(30), 2.0)
    beta_primal, b_primal = _weighted_ridge(np.vstack([x, x[:0]]), z, np.ones(30), 2.0)
    np.testing.assert_allclose(beta_dual, beta_primal, atol=1e-10)
    x2, z2 = _data(80, 10, 0.1)  # primal; weight 2 on a row is that row twice, weight 0 leaves it out
    w = np.ones(80)
    w[:5], w[5:9] = 2.0, 0.0
    rows = np.r_[np.arange(80), np.arange(5)]
    rows = rows[~np.isin(rows, np.arange(5, 9))]
    bw, iw = _weighted_ridge(x2, z2, w, 1.0)
    bd, idp = _weighted_ridge(x2[rows], z2[rows], np.ones(rows.size), 1.0)
    np.testing.assert_allclose(bw, bd, atol=1e-10)
    assert abs(iw - idp) < 1e-10 and abs(b_dual - b_primal) < 1e-10


def test_ridge_heads_learn_a_linear_signal_and_shrink_noise() -> None:
    x, z = _data(400, 60, 0.2)
    fit = fit_ridge(x[:300], z[:300], ApproxConfig(seed=3))
    pred = predict_numpy(fit.head_params, x[300:].astype(np.float32))
    assert pred.shape == (5, 100)
    assert spearman(pred.mean(axis=0), z[300:]) > 0.9
    assert pred.std(axis=0).mean() > 1e-4  # bootstrap heads differ: a spread for active labeling
    assert len(fit.history) == len(RIDGE_ALPHAS) and fit.best_epochs[0] <= 9  # a light penalty (α ≤ 10) wins
    noise_only = np.random.default_rng(1).normal(size=300)
    assert fit_ridge(x[:300], noise_only, ApproxConfig(seed=3)).best_epochs[0] > 11  # a heavy one (α ≥ 316) here
    again = fit_ridge(x[:300], z[:300], ApproxConfig(seed=3))
    np.testing.assert_array_equal(again.head_params["w"], fit.head_params["w"])  # repeatable for a seed


def test_only_the_text_statistics_are_standardised() -> None:
    rng = np.random.default_rng(0)
    x = np.hstack([rng.normal(size=(50, 8)), rng.uniform(2, 9, size=(50, N_TEXT_STATS))]).astype(np.float32)
    x[:, -1] = 4.0  # a statistic constant on the training rows gets no weight
    config = ApproxConfig(stats_weight=0.5)
    scaling = fit_feature_scaling(x, config)
    assert scaling is not None
    out = apply_feature_scaling(x, scaling)
    np.testing.assert_array_equal(out[:, :8], x[:, :8])
    np.testing.assert_allclose(out[:, 8:-1].std(axis=0), 0.5, rtol=1e-4)
    np.testing.assert_allclose(out[:, 8:-1].mean(axis=0), 0.0, atol=1e-5)
    assert not out[:, -1].any()
    assert fit_feature_scaling(x, ApproxConfig.model_validate({"embed": {"features": "pooled"}})) is None
