"""Training the ALinFiK heads: ridge heads or MLP heads on frozen embeddings, or the encoder fine-tuned
end to end with MLP heads.

Ridge heads (:func:`fit_ridge`): the penalty α is picked from ``RIDGE_ALPHAS`` by the exact
leave-one-out error of the unweighted fit, computed for every α from one SVD of the centred rows
(residual e_i / (1 − h_ii) with the hat matrix's diagonal h); then each head k solves the ridge
problem with its own Poisson bootstrap weights and that α. No epochs: the "history" is one record per
α (training MSE, leave-one-out MSE and Spearman), so the learning-curve plot shows the regularisation
path instead.

Loss per head k on a batch (standardised labels z, predictions s, bootstrap weights w):

    L_k = Σ_i w_ki (s_ki - z_i)² / Σ_i w_ki  +  rank_weight · RankNet_k

RankNet pairs each sample of a shuffled batch with its neighbour (i, i+1): for z_i ≠ z_j the term
is softplus(-sign(z_i - z_j) · (s_ki - s_kj)), the logistic loss of ordering the pair correctly.

Early stopping: after every epoch each head is evaluated on the validation split; its best state so
far (by validation Spearman or MSE, ``ApproxConfig.early_stopping``) is kept, and training stops when
no head has improved for ``patience`` epochs. All randomness (initialisation, shuffling, dropout,
bootstrap) comes from one ``torch.Generator`` seeded with ``config.seed``; on the CPU the result is
identical run to run.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

from marketplace.approx.config import ApproxConfig
from marketplace.approx.encoder import TextEncoder
from marketplace.approx.heads import HeadEnsemble
from marketplace.errors import ValidationError

__all__ = ["RIDGE_ALPHAS", "EpochRecord", "FitResult", "fit_finetune", "fit_heads", "fit_ridge", "split_indices"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float  # mean over heads and batches
    val_mse: float  # mean over heads, standardised units
    val_spearman: float  # of the ensemble mean


@dataclass
class FitResult:
    head_params: dict[str, np.ndarray]  # w1 (K, D, H), b1 (K, H), w2 (K, H), b2 (K,)
    history: list[EpochRecord]
    best_epochs: list[int]  # per head
    encoder_state: dict[str, torch.Tensor] | None = None  # fine-tuned encoder weights (finetune mode)
    stopped_early: bool = False


def split_indices(keys: Sequence[str], config: ApproxConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/val/test positions for rows identified by ``keys`` (content hashes).

    Test membership is a fixed function of the key alone — sha256("alinfik-holdout:" + key) below
    ``test_fraction`` — not of the seed or of which other samples were labeled. So a sample held out
    once is held out by every run with the same ``test_fraction``: when the gate re-evaluates the
    champion on a new run's held-out labels, the champion has never trained on them, even if the new
    run learned from a bigger label set. Validation rows are a seeded random share of the rest.
    """
    n = len(keys)
    u = np.array([int(hashlib.sha256(f"alinfik-holdout:{k}".encode()).hexdigest()[:15], 16) for k in keys],
                 dtype=np.float64) / float(16**15)
    test = np.flatnonzero(u < config.test_fraction)
    rest = np.flatnonzero(u >= config.test_fraction)
    n_val = max(2, round(config.val_fraction * n))
    if test.size < 2 or rest.size - n_val < 4:
        raise ValidationError(
            f"{n} labels give {test.size} held-out and {rest.size - n_val} training rows; label more samples"
        )
    gen = torch.Generator().manual_seed(config.seed + 7919)  # independent of the heads' stream
    perm = rest[torch.randperm(rest.size, generator=gen).numpy()]
    return np.sort(perm[n_val:]), np.sort(perm[:n_val]), test


def _rank_columns(x: np.ndarray) -> np.ndarray:
    return rankdata(x, axis=-1)


def _spearman_rows(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Spearman of each row of pred (K, N) with true (N,). Returns (K,)."""
    rp = _rank_columns(pred)
    rt = rankdata(true)
    rp = rp - rp.mean(axis=1, keepdims=True)
    rt = rt - rt.mean()
    denom = np.sqrt((rp**2).sum(axis=1) * (rt**2).sum())
    return np.where(denom > 0, (rp @ rt) / np.where(denom > 0, denom, 1.0), 0.0)


def _loss(pred: torch.Tensor, z: torch.Tensor, weights: torch.Tensor, rank_weight: float) -> torch.Tensor:
    """pred: (K, B), z: (B,), weights: (K, B). Returns the summed loss over heads (scalar)."""
    mse = ((pred - z) ** 2 * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-6)  # (K,)
    total = mse.sum()
    if rank_weight > 0.0 and z.shape[0] > 1:
        dz = z - z.roll(-1)  # (B,)
        sign = torch.sign(dz)
        ds = pred - pred.roll(-1, dims=1)  # (K, B)
        pair_w = weights * weights.roll(-1, dims=1) * (sign != 0)
        rank = (F.softplus(-sign * ds) * pair_w).sum(dim=1) / pair_w.sum(dim=1).clamp(min=1e-6)
        total = total + rank_weight * rank.sum()
    return total


def _bootstrap_weights(config: ApproxConfig, n: int, gen: torch.Generator) -> torch.Tensor:
    if not config.bootstrap or config.n_heads == 1:
        return torch.ones(config.n_heads, n)
    return torch.poisson(torch.ones(config.n_heads, n), generator=gen)  # (K, N)


RIDGE_ALPHAS = np.logspace(-3, 4, 15)  # penalties tried (standardised labels, unit-norm embedding blocks)


def _ridge_path(x: np.ndarray, z: np.ndarray) -> tuple[int, list[EpochRecord]]:
    """Leave-one-out error of the unweighted ridge fit for every α of RIDGE_ALPHAS (with intercept).
    Returns the index of the best α (lowest LOO MSE) and one record per α."""
    n = x.shape[0]
    xc = x - x.mean(axis=0)
    zc = z - z.mean()
    u, sv, _ = np.linalg.svd(xc, full_matrices=False)  # (n, r), (r,)
    uty = u.T @ zc
    u2 = u**2
    history: list[EpochRecord] = []
    for i, alpha in enumerate(RIDGE_ALPHAS):
        shrink = sv**2 / (sv**2 + alpha)  # (r,)
        fitted = u @ (shrink * uty)
        leverage = u2 @ shrink + 1.0 / n  # the intercept's share of the hat matrix
        loo = (zc - fitted) / np.clip(1.0 - leverage, 1e-9, None)
        loo_spearman = float(_spearman_rows((z - loo)[None, :], z)[0])
        history.append(EpochRecord(i + 1, float(np.mean((zc - fitted) ** 2)), float(np.mean(loo**2)), loo_spearman))
    best = int(np.argmin([h.val_mse for h in history]))
    return best, history


def _weighted_ridge(x: np.ndarray, z: np.ndarray, weights: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Coefficients (D,) and intercept of min Σ w_i (z_i − b − x_i·β)² + α |β|², solved in the primal
    (D x D) or the dual (N x N) form, whichever is smaller."""
    total = max(float(weights.sum()), 1e-12)
    mean_x = weights @ x / total
    mean_z = float(weights @ z / total)
    root = np.sqrt(weights)[:, None]
    xw = (x - mean_x) * root  # (N, D)
    zw = (z - mean_z) * root[:, 0]
    n, d = xw.shape
    if d <= n:
        beta = np.linalg.solve(xw.T @ xw + alpha * np.eye(d), xw.T @ zw)
    else:
        beta = xw.T @ np.linalg.solve(xw @ xw.T + alpha * np.eye(n), zw)
    return beta, mean_z - float(mean_x @ beta)


def fit_ridge(x: np.ndarray, z: np.ndarray, config: ApproxConfig) -> FitResult:
    """K bootstrap ridge heads on (N, D) features and (N,) standardised labels (see the module doc)."""
    x64 = np.asarray(x, dtype=np.float64)
    z64 = np.asarray(z, dtype=np.float64)
    if x64.shape[0] < 3:
        raise ValidationError(f"{x64.shape[0]} training rows cannot fit a ridge head; label more samples")
    best, history = _ridge_path(x64, z64)
    alpha = float(RIDGE_ALPHAS[best])
    gen = torch.Generator().manual_seed(config.seed)
    weights = _bootstrap_weights(config, x64.shape[0], gen).numpy().astype(np.float64)  # (K, N)
    fits = [_weighted_ridge(x64, z64, weights[k], alpha) for k in range(config.n_heads)]
    log.info("ridge heads: alpha %g (leave-one-out MSE %.4f, Spearman %.3f)", alpha, history[best].val_mse,
             history[best].val_spearman)
    params = {"w": np.stack([f[0] for f in fits]).astype(np.float32),
              "b": np.asarray([f[1] for f in fits], dtype=np.float32)}
    return FitResult(params, history, [best + 1] * config.n_heads)


class _EarlyStopper:
    """Per-head best state tracking on a validation metric (higher is better)."""

    def __init__(self, n_heads: int, patience: int) -> None:
        self.best = np.full(n_heads, -np.inf)
        self.best_epoch = np.zeros(n_heads, dtype=np.int64)
        self.patience = patience

    def update(self, epoch: int, score: np.ndarray) -> np.ndarray:
        improved = score > self.best + 1e-6
        self.best = np.where(improved, score, self.best)
        self.best_epoch = np.where(improved, epoch, self.best_epoch)
        return improved

    def should_stop(self, epoch: int) -> bool:
        return bool((epoch - self.best_epoch >= self.patience).all())


def _val_scores(pred: np.ndarray, z: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(score per head to maximise, mse per head). pred: (K, N)."""
    mse = ((pred - z) ** 2).mean(axis=1)
    return (_spearman_rows(pred, z) if metric == "spearman" else -mse), mse


def _train_epoch(heads: HeadEnsemble, embed_batch: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                 weights: torch.Tensor, opt: torch.optim.Optimizer, config: ApproxConfig,
                 gen: torch.Generator) -> float:
    """One pass over the training rows in a shuffled order, a step per batch of ``config.batch_size``
    (a last batch of one row is skipped: RankNet needs pairs). ``embed_batch`` maps row positions (B,)
    to embeddings (B, D); z (N,) standardised labels, weights (K, N) bootstrap weights. Returns the
    mean loss per head over the batches (0 when there were none)."""
    heads.train()
    perm = torch.randperm(z.shape[0], generator=gen)
    losses = []
    for start in range(0, z.shape[0], config.batch_size):
        idx = perm[start : start + config.batch_size]
        if idx.numel() < 2:
            continue
        loss = _loss(heads(embed_batch(idx), gen), z[idx], weights[:, idx], config.rank_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()) / config.n_heads)
    return float(np.mean(losses)) if losses else 0.0


def fit_heads(
    x_train: np.ndarray,
    z_train: np.ndarray,
    x_val: np.ndarray,
    z_val: np.ndarray,
    config: ApproxConfig,
    *,
    threads: int | None = 1,
) -> FitResult:
    """Train the head ensemble on fixed embeddings.

    x_*: (N, D) float32 embeddings; z_*: (N,) standardised labels.
    ``threads``: torch intra-op threads while training (restored after). The heads' matmuls are tiny:
    one thread is as fast on an idle machine and 10-40× faster on a busy one, where OpenMP workers
    spin-wait for cores they do not get (measured on the 2-core build machine). None: leave as is.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _fit_heads(x_train, z_train, x_val, z_val, config)
    finally:
        torch.set_num_threads(previous)


def _fit_heads(
    x_train: np.ndarray, z_train: np.ndarray, x_val: np.ndarray, z_val: np.ndarray, config: ApproxConfig
) -> FitResult:
    gen = torch.Generator().manual_seed(config.seed)
    xt = torch.as_tensor(np.asarray(x_train, dtype=np.float32))
    zt = torch.as_tensor(np.asarray(z_train, dtype=np.float32))
    xv = torch.as_tensor(np.asarray(x_val, dtype=np.float32))
    zv = np.asarray(z_val, dtype=np.float64)
    n, dim = xt.shape
    heads = HeadEnsemble(config.n_heads, dim, config.hidden_dim, config.dropout, gen)
    weights = _bootstrap_weights(config, n, gen)
    opt = torch.optim.AdamW(heads.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    stopper = _EarlyStopper(config.n_heads, config.patience)
    best = {k: v.detach().clone() for k, v in heads.state_dict().items()}
    history: list[EpochRecord] = []
    stopped = False
    for epoch in range(1, config.max_epochs + 1):
        train_loss = _train_epoch(heads, lambda idx: xt[idx], zt, weights, opt, config, gen)
        heads.eval()
        with torch.no_grad():
            pv = heads(xv).numpy().astype(np.float64)  # (K, Nv)
        score, mse = _val_scores(pv, zv, config.early_stopping)
        improved = stopper.update(epoch, score)
        if improved.any():
            mask = torch.as_tensor(improved)
            for name, tensor in heads.state_dict().items():
                best[name][mask] = tensor.detach()[mask]
        ensemble_spearman = float(_spearman_rows(pv.mean(axis=0, keepdims=True), zv)[0])
        history.append(EpochRecord(epoch, train_loss, float(mse.mean()), ensemble_spearman))
        if stopper.should_stop(epoch):
            stopped = True
            break
    log.info("heads trained: %d epochs, best epochs per head %s", len(history), stopper.best_epoch.tolist())
    params = {k: v.numpy().copy() for k, v in best.items()}
    return FitResult(params, history, stopper.best_epoch.tolist(), stopped_early=stopped)


def fit_finetune(
    encoder: TextEncoder,
    texts_train: Sequence[str],
    z_train: np.ndarray,
    texts_val: Sequence[str],
    z_val: np.ndarray,
    config: ApproxConfig,
) -> FitResult:
    """Fine-tune the encoder end to end together with the head ensemble.

    The encoder runs in eval mode (its dropout off) so that the only randomness is ours; the heads
    keep their generator-driven dropout. Encoder parameters use ``encoder_lr``, heads ``lr``. The
    best state (encoder + heads) by the ensemble's validation metric is restored at the end.
    """
    gen = torch.Generator().manual_seed(config.seed)
    heads = HeadEnsemble(config.n_heads, encoder.dim, config.hidden_dim, config.dropout, gen)
    model = encoder.model
    model.train(False)
    for p in model.parameters():
        p.requires_grad_(True)
    ids_train = encoder.tokenize(texts_train)
    ids_val = encoder.tokenize(texts_val)
    zt = torch.as_tensor(np.asarray(z_train, dtype=np.float32))
    zv = np.asarray(z_val, dtype=np.float64)
    n = len(ids_train)
    weights = _bootstrap_weights(config, n, gen)
    opt = torch.optim.AdamW(
        [
            {"params": list(model.parameters()), "lr": config.encoder_lr},
            {"params": list(heads.parameters()), "lr": config.lr},
        ],
        weight_decay=config.weight_decay,
    )
    best_score = -np.inf
    best_epoch = 0
    best_encoder = copy.deepcopy(model.state_dict())
    best_heads = {k: v.detach().clone() for k, v in heads.state_dict().items()}
    history: list[EpochRecord] = []
    stopped = False
    def embed_batch(idx: torch.Tensor) -> torch.Tensor:
        return encoder.forward(*encoder.pad([ids_train[i] for i in idx.tolist()])).cpu()  # (B, C)

    for epoch in range(1, config.max_epochs + 1):
        train_loss = _train_epoch(heads, embed_batch, zt, weights, opt, config, gen)
        heads.eval()
        with torch.no_grad():
            emb_val = _embed_ids(encoder, ids_val)
            pv = heads(emb_val).numpy().astype(np.float64)
        score, mse = _val_scores(pv.mean(axis=0, keepdims=True), zv, config.early_stopping)
        ens_spearman = float(_spearman_rows(pv.mean(axis=0, keepdims=True), zv)[0])
        history.append(EpochRecord(epoch, train_loss, float(mse.mean()), ens_spearman))
        if score[0] > best_score + 1e-6:
            best_score, best_epoch = float(score[0]), epoch
            best_encoder = copy.deepcopy(model.state_dict())
            best_heads = {k: v.detach().clone() for k, v in heads.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            stopped = True
            break
    model.load_state_dict(best_encoder)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    log.info("encoder fine-tuned: %d epochs, best epoch %d", len(history), best_epoch)
    params = {k: v.numpy().copy() for k, v in best_heads.items()}
    return FitResult(params, history, [best_epoch] * config.n_heads, encoder_state=best_encoder, stopped_early=stopped)


def _embed_ids(encoder: TextEncoder, ids: list[list[int]]) -> torch.Tensor:
    """Embeddings of pre-tokenised texts, length-sorted batches. Returns (N, C) float32 on the CPU."""
    out = torch.empty((len(ids), encoder.dim))
    order = np.argsort([len(x) for x in ids], kind="stable")
    bs = encoder.embed_config.batch_size
    for start in range(0, len(ids), bs):
        sel = order[start : start + bs]
        input_ids, mask = encoder.pad([ids[i] for i in sel])
        out[torch.as_tensor(sel)] = encoder.forward(input_ids, mask).float().cpu()
    return out
