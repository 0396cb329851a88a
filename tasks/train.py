"""Tasks of the ``train`` flow; each wraps one call into ``marketplace.approx``.

They pass ids and paths: the fit task writes a run folder (bundle, metrics, held-out predictions,
plots) and returns its path; the publish task logs that folder to MLflow and applies the gate; the
record task writes the SQL lineage row. A crash between publish and record leaves a registered
version without its SQL row; rerunning ``record_version`` with the same publication fixes it (the
insert is idempotent per model version).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from marketplace.approx.config import ApproxConfig
from marketplace.approx.data import latest_label_set, load_labeled_data
from marketplace.approx.encoder import EncoderRef, digest_model_dir
from marketplace.approx.publish import Publication, publish_outcome, record_publication
from marketplace.approx.registry import MlflowRegistry, model_name_for
from marketplace.approx.training import load_outcome, train_approximator
from marketplace.campaigns import get_campaign
from marketplace.db import session_scope
from marketplace.settings import Settings
from tasks.common import retry_on_transient_db_error, session_factory, task_settings

__all__ = ["fit_approximator", "make_registry", "publish_approximator", "record_version", "resolve_training_input"]

log = logging.getLogger(__name__)


def make_registry(settings: Settings) -> MlflowRegistry:
    """The MLflow registry of the settings; an explicit artifact root only for local stores (a tracking
    server decides where artifacts go unless MKT_MLFLOW_ARTIFACT_ROOT says otherwise)."""
    uri = settings.resolved_mlflow_tracking_uri
    local = not uri.startswith(("http://", "https://", "databricks"))
    root = settings.mlflow_artifact_root or (settings.resolved_mlflow_artifact_root if local else None)
    return MlflowRegistry(uri, root)


def resolve_device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@task(name="resolve-training-input", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def resolve_training_input(campaign: str, label_set_id: int | None) -> dict[str, Any]:
    """Campaign id/name and the label set to learn from (default: the latest complete one)."""
    with session_scope(session_factory()) as session:
        camp = get_campaign(session, campaign)
        ls_id = label_set_id if label_set_id is not None else latest_label_set(session, camp.id).id
        return {"campaign_id": camp.id, "campaign_name": camp.name, "label_set_id": ls_id,
                "model_name": model_name_for(camp.name)}


@task(name="fit-approximator", cache_policy=NO_CACHE)
def fit_approximator(campaign_id: int, label_set_id: int, config: dict[str, Any], device: str,
                     encoder_path: str | None = None) -> str:
    """Train and evaluate on held-out labels; returns the run folder. ``encoder_path``: any Hugging Face
    encoder folder instead of the packaged MiniLM."""
    settings = task_settings()
    encoder_ref = None
    if encoder_path is not None:
        encoder_ref = EncoderRef(source="path", path=str(Path(encoder_path).resolve()),
                                 digest=digest_model_dir(encoder_path))
    with session_scope(session_factory(settings)) as session:
        data = load_labeled_data(session, campaign_id, label_set_id)
    run_dir = settings.resolved_artifacts_dir / "approx" / "runs" / f"campaign-{campaign_id}" / uuid.uuid4().hex[:12]
    outcome = train_approximator(
        data, ApproxConfig.model_validate(config), store_root=settings.resolved_artifacts_dir / "embeddings",
        run_dir=run_dir, device=resolve_device(device), encoder_ref=encoder_ref,
    )
    return str(outcome.run_dir)


@task(name="publish-approximator", cache_policy=NO_CACHE)
def publish_approximator(run_dir: str, model_name: str, floor: float, device: str) -> dict[str, Any]:
    """Register the run in MLflow (alias candidate) and move champion when the gate passes."""
    settings = task_settings()
    publication = publish_outcome(
        load_outcome(run_dir), make_registry(settings), model_name,
        store_root=settings.resolved_artifacts_dir / "embeddings",
        download_dir=settings.resolved_artifacts_dir / "approx" / "models", floor=floor, device=resolve_device(device),
    )
    return publication.as_dict()


@task(name="record-approximator-version", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def record_version(campaign_id: int, label_set_id: int, run_dir: str, publication: dict[str, Any]) -> int:
    """Write the ApproximatorVersion row and its events; returns the row id."""
    fields = {k: publication[k] for k in Publication.__dataclass_fields__}
    with session_scope(session_factory()) as session:
        row = record_publication(session, campaign_id, label_set_id, load_outcome(run_dir), Publication(**fields))
        return row.id
