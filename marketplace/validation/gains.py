"""Measure what each provider's data is really worth: fine-tune, and watch the target loss drop.

For every provider, seed and regime, a fresh copy of the campaign's target model is fine-tuned on the
provider's K drawn samples (:mod:`marketplace.validation.samples`) and its mean loss on the target set
is measured (L_Y, the mean over target texts of each text's mean token loss: the quantity LinFiK
predicts the drop of). The gain *per sample* is

    gain = (L_Y before - L_Y after) / K_used          (nats per token, per sample)

so it is in the units of a LinFiK score and adds up, to first order, over a provider's paid samples.
Positive: the data helped the buyer's target; negative: it hurt. ``L_Y before`` is measured once.

Cost: providers x seeds x regimes fine-tuning runs of ``epochs * ceil(K / batch_size)`` steps each,
plus one target evaluation per run. The model is loaded once; each run starts from a deep copy of it,
which is the same as loading a fresh copy from the folder, without the disk read.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from marketplace.errors import ConfigError
from marketplace.validation.config import ValidationConfig
from marketplace.validation.finetune import finetune, mean_loss
from marketplace.validation.samples import ValidationData
from marketplace.valuation.target_model import load_target_model
from marketplace.valuation.tokenization import encode_texts

__all__ = ["GainMeasurement", "ProviderGain", "RegimeGain", "measure_gains", "summarise_seeds"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
"""``progress(done, total, message)`` after every fine-tuning run (``total`` = providers x seeds x regimes)."""


@dataclass(frozen=True)
class RegimeGain:
    """One provider's gain per sample in one regime: per seed, and their mean and standard deviation.

    ``sd`` is the sample standard deviation over seeds (ddof 1); 0.0 with a single seed (no spread
    measured, not "no noise").
    """

    regime: str
    per_seed: tuple[float, ...]  # gain per sample, nats/token, in config.seeds order
    loss_after: tuple[float, ...]  # L_Y after fine-tuning, per seed
    mean: float
    sd: float


@dataclass(frozen=True)
class ProviderGain:
    provider_id: int
    provider_name: str
    n_payable: int
    n_used: int  # samples per fine-tuning run: min(K, n_payable)
    regimes: dict[str, RegimeGain]


@dataclass(frozen=True)
class GainMeasurement:
    campaign_id: int
    campaign_name: str
    config_hash: str
    config: dict[str, object]  # ValidationConfig.model_dump(mode="json")
    model_digest: str
    device: str
    loss_before: float  # L_Y of the target model, nats/token
    n_target: int
    providers: tuple[ProviderGain, ...]
    seconds: float


def summarise_seeds(values: list[float]) -> tuple[float, float]:
    """(mean, sample standard deviation) of per-seed values; sd 0.0 for a single value."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def measure_gains(
    data: ValidationData,
    config: ValidationConfig,
    *,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> GainMeasurement:
    """Fine-tune per provider, seed and regime; return every provider's gain per sample (see module doc).

    Holds no database session: read ``data`` with :func:`~marketplace.validation.samples.load_validation_data`
    first. ``device`` is a resolved torch device (``cpu``, ``cuda:0``).
    """
    if (data.per_provider, tuple(data.seeds)) != (config.per_provider, tuple(config.seeds)):
        raise ConfigError(f"the samples were drawn with K={data.per_provider}, seeds {data.seeds}, but the config "
                          f"has K={config.per_provider}, seeds {config.seeds}; draw them with the same config "
                          "(load_validation_data(session, campaign, config))")
    t0 = time.perf_counter()
    base = load_target_model(data.model_dir, device=device)
    max_length = min(config.max_length, base.context_length)
    target_enc = encode_texts(base.tokenizer, data.target_texts, data.target_prompt_chars, max_length=max_length)
    sample_ids = sorted(data.texts)
    row_of = {sid: i for i, sid in enumerate(sample_ids)}
    train_enc = encode_texts(base.tokenizer, [data.texts[s][0] for s in sample_ids],
                             [data.texts[s][1] for s in sample_ids], max_length=max_length)
    loss_before = mean_loss(base.model, target_enc, batch_size=config.eval_batch_size, device=base.device)
    log.info("validation of %s: target loss before fine-tuning %.4f on %d texts", data.campaign_name,
             loss_before, len(data.target_texts))

    total = len(data.providers) * len(config.seeds) * len(config.regimes)
    done = 0
    providers: list[ProviderGain] = []
    for p in data.providers:
        regimes: dict[str, RegimeGain] = {}
        for regime in config.regimes:
            after: list[float] = []
            for seed, draw in zip(config.seeds, p.draws, strict=True):
                model = copy.deepcopy(base.model)
                finetune(model, train_enc, np.asarray([row_of[s] for s in draw]), regime, seed=seed,
                         device=base.device)
                after.append(mean_loss(model, target_enc, batch_size=config.eval_batch_size, device=base.device))
                del model
                done += 1
                message = (f"{p.provider_name} | {regime.name} | seed {seed}: target loss {after[-1]:.4f} "
                           f"(before {loss_before:.4f}, {len(draw)} samples)")
                log.info("validation %d/%d %s", done, total, message)
                if progress is not None:
                    progress(done, total, message)
            per_seed = [(loss_before - a) / max(p.n_used, 1) for a in after]
            mean, sd = summarise_seeds(per_seed)
            regimes[regime.name] = RegimeGain(regime.name, tuple(per_seed), tuple(after), mean, sd)
        providers.append(ProviderGain(p.provider_id, p.provider_name, p.n_payable, p.n_used, regimes))
    return GainMeasurement(
        campaign_id=data.campaign_id, campaign_name=data.campaign_name, config_hash=config.config_hash(),
        config=config.model_dump(mode="json"), model_digest=base.digest, device=str(base.device),
        loss_before=loss_before, n_target=len(data.target_texts), providers=tuple(providers),
        seconds=time.perf_counter() - t0,
    )
