"""The ``train`` flow: learn ALinFiK from a label set, register it, gate the champion (DESIGN.md §2).

resolve campaign + label set → fit (embed with the shared cache, train heads, evaluate against the
baselines on held-out labels) → publish (MLflow run + model version, alias ``candidate``, the gate
moves ``champion``) → record the SQL lineage row.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.train import fit_approximator, publish_approximator, record_version, resolve_training_input

__all__ = ["train"]


@flow(name="train", log_prints=False)
def train(
    campaign: str,
    label_set_id: int | None = None,
    config: dict[str, Any] | None = None,
    floor: float = 0.5,
    device: str = "cpu",
    encoder_path: str | None = None,
) -> dict[str, Any]:
    """Train an approximator for ``campaign`` (id or name); returns the publication summary."""
    target = resolve_training_input(campaign, label_set_id)
    run_dir = fit_approximator(target["campaign_id"], target["label_set_id"], config or {}, device, encoder_path)
    publication = publish_approximator(run_dir, target["model_name"], floor, device)
    version_row_id = record_version(target["campaign_id"], target["label_set_id"], run_dir, publication)
    return {**publication, "campaign": target["campaign_name"], "label_set_id": target["label_set_id"],
            "run_dir": run_dir, "approximator_version_id": version_row_id}
