"""The shift and scale applied to the encoder's vector before the heads see it.

Stacked features (config.EmbedConfig.features) end with the text statistics in their raw units (shares
in [0, 1], logs up to ~10) while the embedding blocks are unit vectors. The statistics are
standardised on the training rows and multiplied by ``ApproxConfig.stats_weight``; every other column
is left as it is (shift 0, scale 1). The arrays are saved with the heads, so a prediction applies
exactly what training did: x' = (x − shift) / scale.
"""

from __future__ import annotations

import numpy as np

from marketplace.approx.config import ApproxConfig
from marketplace.approx.text_stats import N_TEXT_STATS

__all__ = ["apply_feature_scaling", "fit_feature_scaling"]


def fit_feature_scaling(x_train: np.ndarray, config: ApproxConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """(shift (D,), scale (D,)) float32 from the training rows (N, D), or None when the features have
    no statistics (pooled features: nothing to do)."""
    if config.embed.features != "stacked":
        return None
    d = x_train.shape[1]
    shift = np.zeros(d, dtype=np.float64)
    scale = np.ones(d, dtype=np.float64)
    stats = np.asarray(x_train[:, d - N_TEXT_STATS :], dtype=np.float64)
    sd = stats.std(axis=0)
    shift[d - N_TEXT_STATS :] = stats.mean(axis=0)
    # A statistic that does not vary on the training rows carries nothing: scale it to zero weight.
    scale[d - N_TEXT_STATS :] = np.where(sd > 1e-9, sd, np.inf) / config.stats_weight
    return shift.astype(np.float32), scale.astype(np.float32)


def apply_feature_scaling(x: np.ndarray, scaling: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """(N, D) float32 features as the heads see them (a copy; only the columns with a shift or a scale
    other than 1 are computed)."""
    if scaling is None:
        return x
    shift, scale = scaling
    out = np.array(x, dtype=np.float32)
    cols = np.flatnonzero((shift != 0) | (scale != 1))
    out[:, cols] = (out[:, cols] - shift[cols]) / scale[cols]
    return out
