"""Payout validation: does the money follow what fine-tuning on each provider's data really gains?

The marketplace pays by first-order LinFiK, a prediction of the target-loss drop one SGD step on a
sample would give. This package measures the drop itself: per provider, a fresh copy of the target
model is fine-tuned on K of its payable samples, and the gain per sample is compared with the
provider's share of the latest pricing run.

The caller owns the session and runs the steps in this order (cheap checks first, and no database
transaction stays open while models train):

    with factory() as session:
        payouts = load_payouts(session, campaign)                   # NotFoundError: run `marketplace price`
        data = load_validation_data(session, campaign, config)
    gains = measure_gains(data, config, device="cpu", progress=None)   # minutes: providers x seeds x regimes
    result = compare_with_payouts(gains, payouts)
    write_validation(result, out_dir); validation_markdown(result)     # HTML, CSV, JSON; Markdown summary

:func:`~marketplace.validation.run.validate_campaign` does exactly this; the ``marketplace validate``
command and the ``validate`` flow both call it.
"""

from marketplace.validation.cache import load_measurement, measurement_cache_dir, measurement_key, save_measurement
from marketplace.validation.compare import PayoutValidation, ProviderComparison, RegimeVerdict, compare_with_payouts
from marketplace.validation.config import DEFAULT_REGIMES, RegimeConfig, ValidationConfig
from marketplace.validation.finetune import finetune, mean_loss
from marketplace.validation.gains import GainMeasurement, ProviderGain, RegimeGain, measure_gains
from marketplace.validation.payouts import PayoutSnapshot, ProviderPayout, load_payouts
from marketplace.validation.render import (
    validation_csv_rows,
    validation_html,
    validation_markdown,
    write_validation,
)
from marketplace.validation.run import validate_campaign
from marketplace.validation.samples import ProviderDraw, ValidationData, draw_samples, load_validation_data

__all__ = [
    "DEFAULT_REGIMES",
    "GainMeasurement",
    "PayoutSnapshot",
    "PayoutValidation",
    "ProviderComparison",
    "ProviderDraw",
    "ProviderGain",
    "ProviderPayout",
    "RegimeConfig",
    "RegimeGain",
    "RegimeVerdict",
    "ValidationConfig",
    "ValidationData",
    "compare_with_payouts",
    "draw_samples",
    "finetune",
    "load_measurement",
    "load_payouts",
    "load_validation_data",
    "mean_loss",
    "measure_gains",
    "measurement_cache_dir",
    "measurement_key",
    "save_measurement",
    "validate_campaign",
    "validation_csv_rows",
    "validation_html",
    "validation_markdown",
    "write_validation",
]
