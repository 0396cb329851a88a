"""Label transforms: the head learns standardised targets; scores are reported in LinFiK units.

``standard``: z = (y - mean) / std, inverted exactly.
``quantile``: z = Φ⁻¹((rank - 0.5) / n) (rank-Gaussian; robust to LinFiK's heavy tails), inverted by
monotone linear interpolation between the training labels' (z, y) knots and clamped at the ends.
Both are monotone increasing, so they never change a ranking, and a positive LinFiK stays positive
under the round trip (pricing clips at 0, so the sign matters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata

from marketplace.errors import ValidationError

__all__ = ["LabelScaler", "fit_scaler"]


@dataclass(frozen=True)
class LabelScaler:
    kind: Literal["standard", "quantile"]
    mean: float
    std: float
    knots_z: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,) increasing
    knots_y: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (M,) non-decreasing

    def transform(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "standard":
            return (y - self.mean) / self.std
        return np.interp(y, self.knots_y, self.knots_z)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if self.kind == "standard":
            return z * self.std + self.mean
        return np.interp(z, self.knots_z, self.knots_y)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "mean": self.mean, "std": self.std}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"scaler_knots_z": self.knots_z.astype(np.float64), "scaler_knots_y": self.knots_y.astype(np.float64)}

    @classmethod
    def from_parts(cls, meta: dict[str, object], arrays: dict[str, np.ndarray]) -> LabelScaler:
        kind = meta["kind"]
        if kind not in ("standard", "quantile"):
            raise ValidationError(f"unknown label transform {kind!r} in a model bundle")
        return cls(
            kind=kind,
            mean=float(meta["mean"]),  # type: ignore[arg-type]
            std=float(meta["std"]),  # type: ignore[arg-type]
            knots_z=np.asarray(arrays.get("scaler_knots_z", np.zeros(0)), dtype=np.float64),
            knots_y=np.asarray(arrays.get("scaler_knots_y", np.zeros(0)), dtype=np.float64),
        )


def fit_scaler(y: np.ndarray, kind: Literal["standard", "quantile"]) -> LabelScaler:
    """Fit on training labels only. y: (N,). Raises ValidationError on constant or non-finite labels."""
    y = np.asarray(y, dtype=np.float64)
    if y.size < 2 or not np.isfinite(y).all():
        raise ValidationError("labels must be at least two finite numbers to standardise")
    mean, std = float(y.mean()), float(y.std())
    if not std > 0.0:
        raise ValidationError(
            "all training labels are equal; LinFiK labels carry no signal — check the label set"
        )
    if kind == "standard":
        return LabelScaler(kind="standard", mean=mean, std=std)
    z = ndtri((rankdata(y) - 0.5) / y.size)
    order = np.argsort(y, kind="stable")
    ys, zs = y[order], z[order]
    # Tied labels share one average rank, hence one z: de-duplicate knots so interp is a function.
    uniq_y, first = np.unique(ys, return_index=True)
    return LabelScaler(kind="quantile", mean=mean, std=std, knots_z=zs[first], knots_y=uniq_y)
