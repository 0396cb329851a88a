"""One payout validation end to end: the single call the CLI command and the ``validate`` flow share.

Reads the latest pricing run and the samples in one short session, fine-tunes with no session open,
compares, and writes the report files (HTML, CSV, Markdown, JSON) into ``out_dir``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from sqlalchemy.orm import Session, sessionmaker

from marketplace.validation.cache import load_measurement, measurement_key, save_measurement
from marketplace.validation.compare import PayoutValidation, compare_with_payouts
from marketplace.validation.config import ValidationConfig
from marketplace.validation.gains import Progress, measure_gains
from marketplace.validation.payouts import load_payouts
from marketplace.validation.render import write_validation
from marketplace.validation.samples import load_validation_data

__all__ = ["validate_campaign"]

log = logging.getLogger(__name__)


def validate_campaign(
    factory: sessionmaker[Session],
    campaign: str | int,
    config: ValidationConfig,
    out_dir: Path,
    *,
    period: str | None = None,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    cache_dir: Path | None = None,
) -> tuple[PayoutValidation, dict[str, Path]]:
    """Validate ``campaign``'s latest pricing run of ``period`` (default: its latest) against fine-tuning.

    ``cache_dir``: where measurements are kept (:mod:`marketplace.validation.cache`); the same samples,
    target, model and settings reuse the stored measurement instead of fine-tuning again (a validation
    after a relabel or a repricing takes seconds). None measures every time and stores nothing.
    Raises NotFoundError (before any training) when the campaign or its pricing run does not exist.
    """
    with factory() as session:
        payouts = load_payouts(session, campaign, period)
        data = load_validation_data(session, campaign, config)
    key = measurement_key(data, config, data.model_digest, str(device)) if cache_dir and data.model_digest else None
    measurement = load_measurement(cache_dir, key) if cache_dir and key else None
    if measurement is not None and key is not None:
        log.info("reusing the fine-tuning measurement %s: same samples, target, model and settings", key[:12])
        names = {p.provider_id: p.provider_name for p in data.providers}  # names as they are now
        measurement = dataclasses.replace(
            measurement, campaign_id=data.campaign_id, campaign_name=data.campaign_name,
            providers=tuple(dataclasses.replace(p, provider_name=names.get(p.provider_id, p.provider_name))
                            for p in measurement.providers))
    else:
        measurement = measure_gains(data, config, device=device, progress=progress)
        if cache_dir and key:
            save_measurement(cache_dir, key, measurement)
    result = compare_with_payouts(measurement, payouts)
    return result, write_validation(result, Path(out_dir))
