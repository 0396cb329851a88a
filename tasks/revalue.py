"""Tasks of the ``revalue`` flow: list the inbox, decide which stages to rerun."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from marketplace.db import session_scope
from marketplace.inbox import list_provider_folders
from marketplace.revaluation import plan_revaluation
from tasks.common import retry_on_transient_db_error, session_factory

__all__ = ["list_inbox_task", "plan_revaluation_task"]


@task(name="list-inbox", cache_policy=NO_CACHE)
def list_inbox_task(inbox: str) -> list[tuple[str, str]]:
    """(provider, folder) pairs of the inbox, in ingestion order."""
    return [(name, str(path)) for name, path in list_provider_folders(Path(inbox))]


@task(name="plan-revaluation", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def plan_revaluation_task(campaign: str, force: bool, label_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Which of label / train must run again (see marketplace.revaluation). ``label_config``: the LinFiK
    options this run labels with (validated here, before anything runs); None keeps the campaign's."""
    config_hash = None
    if label_config is not None:
        from marketplace.valuation.config import LinFiKConfig

        config_hash = LinFiKConfig.model_validate(label_config).config_hash()
    with session_scope(session_factory()) as session:
        return dataclasses.asdict(plan_revaluation(session, campaign, force=force, label_config_hash=config_hash))
