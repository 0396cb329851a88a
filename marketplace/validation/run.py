"""One payout validation end to end: the single call the CLI command and the ``validate`` flow share.

Reads the latest pricing run and the samples in one short session, fine-tunes with no session open,
compares, and writes the report files (HTML, CSV, Markdown, JSON) into ``out_dir``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from sqlalchemy.orm import Session, sessionmaker

from marketplace.validation.compare import PayoutValidation, compare_with_payouts
from marketplace.validation.config import ValidationConfig
from marketplace.validation.gains import Progress, measure_gains
from marketplace.validation.payouts import load_payouts
from marketplace.validation.render import write_validation
from marketplace.validation.samples import load_validation_data

__all__ = ["validate_campaign"]


def validate_campaign(
    factory: sessionmaker[Session],
    campaign: str | int,
    config: ValidationConfig,
    out_dir: Path,
    *,
    period: str | None = None,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
) -> tuple[PayoutValidation, dict[str, Path]]:
    """Validate ``campaign``'s latest pricing run of ``period`` (default: its latest) against fine-tuning.

    Raises NotFoundError (before any training) when the campaign or its pricing run does not exist.
    """
    with factory() as session:
        payouts = load_payouts(session, campaign, period)
        data = load_validation_data(session, campaign, config)
    measurement = measure_gains(data, config, device=device, progress=progress)
    result = compare_with_payouts(measurement, payouts)
    return result, write_validation(result, Path(out_dir))
