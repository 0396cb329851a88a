"""Frozen, validated parameters of a payout validation, and their stable hash.

:class:`ValidationConfig` holds everything that changes a measured gain: how many samples per
provider, which seeds, the fine-tuning regimes and the truncation length. The device is *not* in it
(it only changes float rounding and speed), so the hash stays the same on CPU and GPU.

Two regimes by default, the two ends of what "training on a sample" can mean:

- ``sgd``: plain SGD on each sample's mean token loss, every sample counted once (the update LinFiK
  linearises: its score is the first-order drop of the target loss after one such step);
- ``adamw``: AdamW on the token loss, every token counted once (the usual fine-tuning a buyer runs).
  The headline numbers use it by default: a payout is right when it follows what the buyer's real
  training would gain, and SGD is reported next to it to tell a LinFiK error from a regime effect.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from marketplace.valuation.config import Weighting, stable_hash

__all__ = ["DEFAULT_REGIMES", "Optimizer", "RegimeConfig", "ValidationConfig"]

Optimizer = Literal["sgd", "adamw"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def config_hash(self) -> str:
        """sha256 hex of the JSON form (stable across runs and processes)."""
        return stable_hash(self.model_dump(mode="json"))


class RegimeConfig(_Frozen):
    """One fine-tuning recipe, applied to a fresh copy of the target model per provider and seed.

    - ``optimizer``: ``sgd`` (no momentum) or ``adamw`` (weight decay 0: the run is short, and decay
      would move the weights without any data).
    - ``weighting``: ``sample`` averages each sample's mean token loss over the batch (one sample, one
      vote, as LinFiK's default); ``token`` averages over every target token of the batch (the usual
      language-model loss).
    - ``learning_rate``; ``epochs``: passes over the provider's K samples, so a run takes
      ``epochs * ceil(K / batch_size)`` optimizer steps; ``batch_size``: samples per step.
    """

    name: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    optimizer: Optimizer
    weighting: Weighting
    learning_rate: float = Field(gt=0.0)
    epochs: int = Field(default=2, ge=1, le=1000)
    batch_size: int = Field(default=16, ge=1, le=65536)

    def describe(self) -> str:
        """One line for reports: ``sgd lr 0.03, 4 epochs, batch 16, sample-weighted``."""
        return (f"{self.optimizer} lr {self.learning_rate:g}, {self.epochs} epochs, batch {self.batch_size}, "
                f"{self.weighting}-weighted")


DEFAULT_REGIMES: tuple[RegimeConfig, ...] = (
    RegimeConfig(name="sgd", optimizer="sgd", weighting="sample", learning_rate=0.03, epochs=4, batch_size=16),
    RegimeConfig(name="adamw", optimizer="adamw", weighting="token", learning_rate=3e-4, epochs=2, batch_size=16),
)


class ValidationConfig(_Frozen):
    """What a payout validation measures. Its hash is stamped on every result.

    - ``per_provider`` (K): payable samples drawn per provider and seed (all of them when a provider has
      fewer; the gain is then divided by the number actually used).
    - ``seeds``: one fine-tuning run per seed and regime; the seed draws the K samples and the batch
      order, so the spread over seeds covers both the sample choice and the training noise.
    - ``regimes``: the fine-tuning recipes (names unique); ``headline``: the regime whose numbers are
      the verdict (AdamW by default, see the module docstring).
    - ``max_length``: token truncation of samples and target texts (capped by the model's context);
      256 is LinFiK's default, so the fine-tuning sees what the labels saw.
    - ``eval_batch_size``: texts per forward pass when measuring the target loss (speed only, but kept
      here because it decides the float summation order).
    """

    per_provider: int = Field(default=64, ge=1, le=100_000)
    seeds: tuple[int, ...] = (0, 1)
    regimes: tuple[RegimeConfig, ...] = DEFAULT_REGIMES
    headline: str = "adamw"
    max_length: int = Field(default=256, ge=2, le=1_000_000)
    eval_batch_size: int = Field(default=32, ge=1, le=65536)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value) or any(s < 0 for s in value):
            raise ValueError("seeds must be a non-empty list of distinct non-negative integers, e.g. (0, 1)")
        return value

    @model_validator(mode="after")
    def _regimes(self) -> ValidationConfig:
        names = [r.name for r in self.regimes]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"regimes must be non-empty with distinct names, got {names}")
        if self.headline not in names:
            raise ValueError(f"headline regime {self.headline!r} is not one of the regimes {names}")
        return self
