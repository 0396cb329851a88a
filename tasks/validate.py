"""The task of the ``validate`` flow: one payout validation (a core call), published as an artifact."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from marketplace.reports.md_safe import md_escape
from marketplace.runtime import current_settings, resolve_device
from marketplace.validation import ValidationConfig, measurement_cache_dir, validate_campaign, validation_markdown
from tasks.artifacts import artifact_key
from tasks.common import session_factory

__all__ = ["validate_payouts_task"]

log = logging.getLogger(__name__)


@task(name="validate-payouts", cache_policy=NO_CACHE)
def validate_payouts_task(campaign: str, config: dict[str, Any], out_dir: str, period: str | None,
                          device: str | None) -> dict[str, Any]:
    """Fine-tune per provider, compare with the latest pricing run, write the report; returns the result
    (JSON-able) and the file paths. No retry: a rerun repeats minutes of training for the same answer."""
    result, files = validate_campaign(
        session_factory(), campaign, ValidationConfig.model_validate(config), Path(out_dir), period=period,
        device=resolve_device(device), progress=lambda done, total, msg: log.info("[%d/%d] %s", done, total, msg),
        cache_dir=measurement_cache_dir(current_settings()),
    )
    create_markdown_artifact(markdown=validation_markdown(result),
                             key=artifact_key("validation", result.campaign_id, result.period),
                             description=f"Payout validation, campaign {md_escape(result.campaign_name)}, "
                                         f"{md_escape(result.period)}")
    return {"result": result.to_dict(), "files": {k: str(p) for k, p in files.items()}}
