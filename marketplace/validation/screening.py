"""The fine-tuning check of every pricing run: a provider is paid only when fine-tuning on its data helps.

Why it exists (measured in ``benchmarks/results/payout_fidelity.md``): first-order valuations (LinFiK in
every variant tried: plain, relative to the pool, preconditioned, with a curvature penalty) are positive
for data that fine-tuning shows to *hurt* the buyer's target: fluent off-target text and corrupted copies of
the target's own text. Which variant goes wrong, and by how much, changes with the target model's build
and with the market. A direct, cheap measurement does not: before a pricing run allocates anything, each
provider's data is fine-tuned on, a few times, and a provider whose data does not clearly lower the
target loss is left out of the run. The valuation (LinFiK scores) still decides how the budget is split
among the providers that pass, and among their samples.

The check, per provider (its cost does not grow with the pool, only with the number of providers):

- draw K of its *payable* samples (``per_provider``, default 64; all of them when it has fewer) with each
  of the check's seeds (default 100, 101, 102: other seeds, hence other draws, than ``marketplace
  validate``'s 0 and 1, so the validation that judges payouts is a replication, not the same experiment);
- fine-tune a fresh copy of the target model on them with the buyer's usual recipe (AdamW on the token
  loss, the ``adamw`` regime of :mod:`marketplace.validation.config`) and measure the drop of the mean
  target loss per sample (:func:`marketplace.validation.gains.measure_gains`);
- **pass** when the mean gain over seeds exceeds ``z`` standard deviations (default z = 1):
  ``mean - z * sd > 0``. A gain whose sign the seeds do not settle does not pass: paying for data whose
  benefit is within noise pays mostly for noise.

Measurements are kept per provider in the validation measurement cache (keyed by the drawn texts, the
target set, the model digest and these settings), so repricing, or pricing after another provider
uploads, fine-tunes only on what is new. The result is stored on the pricing run (``screening``), and
the run pays nothing to providers that did not pass (:func:`marketplace.pricing.runs.create_pricing_run`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db.screening import Screener
from marketplace.errors import NotFoundError
from marketplace.validation.cache import load_measurement, measurement_key, save_measurement
from marketplace.validation.config import DEFAULT_REGIMES, RegimeConfig, ValidationConfig, _Frozen
from marketplace.validation.gains import GainMeasurement, Progress, measure_gains
from marketplace.validation.samples import ValidationData, load_validation_data

__all__ = ["ProviderCheck", "Screening", "ScreeningConfig", "screen_providers", "screener", "screening_from_json"]

log = logging.getLogger(__name__)

_ADAMW = next(r for r in DEFAULT_REGIMES if r.name == "adamw")


class ScreeningConfig(_Frozen):
    """What the fine-tuning check measures and how it decides. Its hash is stored with every result.

    - ``per_provider`` (K): payable samples drawn per provider and seed.
    - ``seeds``: one fine-tuning run per seed; the seed draws the samples and orders the batches.
    - ``regime``: the fine-tuning recipe (default: AdamW on the token loss, lr 3e-4, 2 epochs, batch 16).
    - ``z``: a provider passes when ``mean gain - z * sd > 0`` (sd over seeds, ddof 1).
    - ``max_length``, ``eval_batch_size``: as in :class:`~marketplace.validation.config.ValidationConfig`.
    """

    per_provider: int = Field(default=64, ge=1, le=100_000)
    seeds: tuple[int, ...] = (100, 101, 102)
    regime: RegimeConfig = _ADAMW
    z: float = Field(default=1.0, ge=0.0, le=10.0)
    max_length: int = Field(default=256, ge=2, le=1_000_000)
    eval_batch_size: int = Field(default=32, ge=1, le=65536)

    def validation_config(self) -> ValidationConfig:
        """The same measurement as a validation config (one regime), for the shared fine-tuning code."""
        return ValidationConfig(per_provider=self.per_provider, seeds=self.seeds, regimes=(self.regime,),
                                headline=self.regime.name, max_length=self.max_length,
                                eval_batch_size=self.eval_batch_size)


@dataclass(frozen=True)
class ProviderCheck:
    """One provider's check: gain per sample (nats/token) per seed, their mean and sd, and the verdict."""

    provider_id: int
    provider_name: str
    n_payable: int
    n_used: int
    per_seed: tuple[float, ...]
    gain: float
    sd: float
    passed: bool


@dataclass(frozen=True)
class Screening:
    """The check of every provider with a payable sample, as a pricing run stores it."""

    config_hash: str
    config: dict[str, Any]
    model_digest: str
    checks: tuple[ProviderCheck, ...]

    @property
    def passed_provider_ids(self) -> frozenset[int]:
        return frozenset(c.provider_id for c in self.checks if c.passed)

    def to_json(self) -> dict[str, Any]:
        """What ``pricing_runs.screening`` holds (plain JSON)."""
        return {"config_hash": self.config_hash, "config": self.config, "model_digest": self.model_digest,
                "providers": [dataclasses.asdict(c) for c in self.checks]}


def screening_from_json(doc: dict[str, Any]) -> Screening:
    """The inverse of :meth:`Screening.to_json` (for reports and tests)."""
    checks = tuple(ProviderCheck(**{**c, "per_seed": tuple(c["per_seed"])}) for c in doc["providers"])
    return Screening(config_hash=str(doc["config_hash"]), config=dict(doc["config"]),
                     model_digest=str(doc["model_digest"]), checks=checks)


def _one_provider(data: ValidationData, index: int) -> ValidationData:
    p = data.providers[index]
    ids = {sid for draw in p.draws for sid in draw}
    return dataclasses.replace(data, providers=(p,), texts={s: data.texts[s] for s in ids})


def screen_providers(
    factory: sessionmaker[Session],
    campaign: str | int,
    config: ScreeningConfig | None = None,
    *,
    device: torch.device | str = "cpu",
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Screening:
    """Check every provider that has a payable sample (see the module doc); fine-tunes only uncached ones.

    Reads the samples in one short session and fine-tunes with no session open. Raises NotFoundError
    when the campaign has no target samples or no provider has a payable sample.
    """
    config = config or ScreeningConfig()
    vconfig = config.validation_config()
    with factory() as session:
        data = load_validation_data(session, campaign, vconfig)
    if not data.model_digest:
        raise NotFoundError(f"campaign {data.campaign_name!r} pins no target model digest; recreate it with "
                            "`marketplace campaign create` so its model can be checked")
    singles = [_one_provider(data, i) for i in range(len(data.providers))]
    keys = [measurement_key(d, vconfig, data.model_digest, str(device)) for d in singles]
    found: dict[int, GainMeasurement] = {}
    if cache_dir is not None:
        for i, key in enumerate(keys):
            hit = load_measurement(cache_dir, key)
            if hit is not None:
                found[i] = hit
    missing = [i for i in range(len(singles)) if i not in found]
    if missing:
        log.info("fine-tuning check of %s: %d provider(s) to measure, %d cached", data.campaign_name,
                 len(missing), len(found))
        todo = dataclasses.replace(
            data, providers=tuple(data.providers[i] for i in missing),
            texts={s: t for i in missing for s, t in singles[i].texts.items()})
        measured = measure_gains(todo, vconfig, device=device, progress=progress)
        for i, gain in zip(missing, measured.providers, strict=True):
            one = dataclasses.replace(measured, providers=(gain,))
            found[i] = one
            if cache_dir is not None:
                save_measurement(cache_dir, keys[i], one)
    checks = []
    for i, p in enumerate(data.providers):
        regime = found[i].providers[0].regimes[config.regime.name]
        checks.append(ProviderCheck(
            provider_id=p.provider_id, provider_name=p.provider_name, n_payable=p.n_payable, n_used=p.n_used,
            per_seed=tuple(float(g) for g in regime.per_seed), gain=float(regime.mean), sd=float(regime.sd),
            passed=bool(regime.mean - config.z * regime.sd > 0.0)))
    for c in checks:
        log.info("fine-tuning check %s: gain %+.3e ± %.1e per sample over %d seeds -> %s", c.provider_name,
                 c.gain, c.sd, len(c.per_seed), "pass" if c.passed else "not paid")
    return Screening(config_hash=config.config_hash(), config=config.model_dump(mode="json"),
                     model_digest=data.model_digest, checks=tuple(checks))



def screener(config: ScreeningConfig | None = None, *, device: torch.device | str = "cpu",
             cache_dir: Path | None = None, progress: Progress | None = None) -> Screener:
    """The :data:`~marketplace.db.screening.Screener` that pricing calls: :func:`screen_providers` with these
    settings, returning the stored document."""

    def run(factory: sessionmaker[Session], campaign_id: int) -> dict[str, Any]:
        return screen_providers(factory, campaign_id, config, device=device, cache_dir=cache_dir,
                                progress=progress).to_json()

    return run
