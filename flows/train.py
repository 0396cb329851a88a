"""The ``train`` flow: learn ALinFiK from a label set, register it, gate the champion (docs/valuation.md).

resolve campaign + label set → fit (embed with the shared cache, train heads, evaluate against the
baselines on held-out labels) → publish (MLflow run + model version, alias ``candidate``, the gate
moves ``champion``) → record the SQL lineage row.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.train import (
    fit_approximator_task,
    publish_approximator_task,
    record_approximator_version_task,
    resolve_training_input_task,
)

__all__ = ["train"]


@flow(name="train", log_prints=False)
def train(
    campaign: str,
    label_set_id: int | None = None,
    config: dict[str, Any] | None = None,
    floor: float = 0.5,
    device: str | None = None,
    encoder_path: str | None = None,
) -> dict[str, Any]:
    """Train an approximator for ``campaign`` (id or name); returns the publication summary."""
    target = resolve_training_input_task(campaign, label_set_id)
    run_dir = fit_approximator_task(target["campaign_id"], target["label_set_id"], config or {}, device, encoder_path)
    publication = publish_approximator_task(run_dir, target["model_name"], floor, device)
    version_row_id = record_approximator_version_task(target["campaign_id"], target["label_set_id"], run_dir,
                                                      publication)
    return {**publication, "campaign": target["campaign_name"], "label_set_id": target["label_set_id"],
            "run_dir": run_dir, "approximator_version_id": version_row_id}
