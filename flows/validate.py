"""The ``validate`` flow: does the money follow what fine-tuning on each provider's data gains?

Fine-tunes copies of the campaign's target model on K payable samples of each provider (several seeds,
AdamW on the token loss and plain SGD), measures the change of the target loss per sample, and compares
it with the latest pricing run: ideal shares, misallocated share, harmful share (docs/valuation.md).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.validate import validate_payouts_task

__all__ = ["validate"]


@flow(name="validate", log_prints=False)
def validate(campaign: str, out_dir: str, config: dict[str, Any] | None = None, period: str | None = None,
             device: str | None = None) -> dict[str, Any]:
    """Validate ``campaign``'s latest pricing run (of ``period``); ``config``: ValidationConfig fields."""
    return validate_payouts_task(campaign, config or {}, out_dir, period, device)
