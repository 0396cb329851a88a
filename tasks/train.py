"""Tasks of the ``train`` flow; each wraps one call into ``marketplace.approx``.

They pass ids and paths: the fit task writes a run folder (bundle, metrics, held-out predictions,
plots) and returns its path; the publish task logs that folder to MLflow and applies the gate; the
record task writes the SQL lineage row. A crash between publish and record leaves a registered
version without its SQL row; rerunning ``record_approximator_version_task`` with the same publication
fixes it (the insert is idempotent per model version).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from marketplace.approx.config import ApproxConfig
from marketplace.approx.data import load_labeled_data, resolve_training_input
from marketplace.approx.encoder import EncoderRef
from marketplace.approx.publish import Publication, publish_outcome, record_publication
from marketplace.approx.training import load_outcome, new_run_dir, train_approximator
from marketplace.db import session_scope
from marketplace.runtime import model_registry, resolve_device
from tasks.common import retry_on_transient_db_error, session_factory, task_settings

__all__ = [
    "fit_approximator_task", "publish_approximator_task", "record_approximator_version_task",
    "resolve_training_input_task",
]

log = logging.getLogger(__name__)


@task(name="resolve-training-input", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def resolve_training_input_task(campaign: str, label_set_id: int | None) -> dict[str, Any]:
    """Campaign id/name and the label set to learn from (default: the latest complete one)."""
    with session_scope(session_factory()) as session:
        return dataclasses.asdict(resolve_training_input(session, campaign, label_set_id))


@task(name="fit-approximator", cache_policy=NO_CACHE)
def fit_approximator_task(campaign_id: int, label_set_id: int, config: dict[str, Any], device: str | None,
                          encoder_path: str | None = None) -> str:
    """Train and evaluate on held-out labels; returns the run folder. ``encoder_path``: any Hugging Face
    encoder folder instead of the packaged MiniLM."""
    settings = task_settings()
    with session_scope(session_factory(settings)) as session:
        data = load_labeled_data(session, campaign_id, label_set_id)
    outcome = train_approximator(  # minutes of work: no transaction open
        data, ApproxConfig.model_validate(config), store_root=settings.resolved_artifacts_dir / "embeddings",
        run_dir=new_run_dir(settings.resolved_artifacts_dir, campaign_id), device=resolve_device(device, settings),
        encoder_ref=EncoderRef.from_path(encoder_path) if encoder_path is not None else None,
    )
    return str(outcome.run_dir)


@task(name="publish-approximator", cache_policy=NO_CACHE)
def publish_approximator_task(run_dir: str, model_name: str, floor: float, device: str | None) -> dict[str, Any]:
    """Register the run in MLflow (alias candidate) and move champion when the gate passes."""
    settings = task_settings()
    publication = publish_outcome(
        load_outcome(run_dir), model_registry(settings), model_name,
        store_root=settings.resolved_artifacts_dir / "embeddings",
        download_dir=settings.resolved_artifacts_dir / "approx" / "models", floor=floor,
        device=resolve_device(device, settings),
    )
    return publication.as_dict()


@task(name="record-approximator-version", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def record_approximator_version_task(campaign_id: int, label_set_id: int, run_dir: str,
                                     publication: dict[str, Any]) -> int:
    """Write the ApproximatorVersion row and its events; returns the row id."""
    with session_scope(session_factory()) as session:
        row = record_publication(session, campaign_id, label_set_id, load_outcome(run_dir),
                                 Publication.from_dict(publication))
        return row.id
