"""The two PNG artifacts of a training run: learning curve and predicted-vs-exact scatter (Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from marketplace.approx.train import EpochRecord

__all__ = ["plot_learning_curve", "plot_pred_vs_exact"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curve(history: Sequence[EpochRecord], out: Path) -> Path:
    plt = _pyplot()
    epochs = [h.epoch for h in history]
    fig, ax1 = plt.subplots(figsize=(6, 4), dpi=100)
    ax1.plot(epochs, [h.train_loss for h in history], label="train loss (per head)")
    ax1.plot(epochs, [h.val_mse for h in history], label="validation MSE (std. units)")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax2 = ax1.twinx()
    ax2.plot(epochs, [h.val_spearman for h in history], color="tab:green", label="validation Spearman")
    ax2.set_ylabel("Spearman")
    lines = ax1.get_lines() + ax2.get_lines()
    ax1.legend(lines, [str(line.get_label()) for line in lines], loc="best", fontsize=8)
    ax1.set_title("ALinFiK learning curve")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_pred_vs_exact(pred: np.ndarray, exact: np.ndarray, spearman: float, out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(exact, pred, s=6, alpha=0.5)
    lo, hi = float(min(exact.min(), pred.min())), float(max(exact.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8)
    ax.set_xlabel("exact LinFiK (held out)")
    ax.set_ylabel("ALinFiK prediction")
    ax.set_title(f"held-out predictions, Spearman {spearman:.3f} (n={exact.size})")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
