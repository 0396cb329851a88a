"""The ``revalue`` flow: the scheduled end-to-end run (docs/architecture.md).

ingest new provider files (inbox) → label (exact LinFiK) → train and register ALinFiK → score with the
champion → price the period. Every stage is its own flow, run here as a subflow, and every stage is
idempotent: re-ingesting the same bytes returns the existing submission, labeling and training run
only when the pool changed (marketplace.revaluation), scoring only scores what the champion has not
scored, and pricing posts per submission only the difference to what was credited before. Earlier
credits are adjusted by new entries, never rewritten. ``label`` and ``score`` run on the task runner
the settings name when the run starts (``MKT_TASK_RUNNER``, ``MKT_DASK_ADDRESS``, ``MKT_MAX_WORKERS``,
see flows.runners); ``device`` None is ``MKT_DEVICE``, resolved where each task runs.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ingest import ingest
from flows.label import label
from flows.price import price
from flows.runners import with_configured_runner
from flows.score import score
from flows.train import train
from marketplace.revaluation import current_period
from tasks.revalue import list_inbox_task, plan_revaluation_task

__all__ = ["revalue"]


@flow(name="revalue", log_prints=False)
def revalue(
    campaign: str,
    period: str | None = None,
    inbox: str | None = None,
    n_labels: int = 2000,
    label_config: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    pricing_policy: dict[str, Any] | None = None,
    promotion_floor: float = 0.5,
    audit_n: int = 100,
    force: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Revalue ``campaign`` for ``period`` (default: the current UTC month); returns each stage's summary.

    ``label_config``: LinFiK options (marketplace.valuation.LinFiKConfig); a change relabels and retrains.
    None keeps the configuration of the campaign's latest label set (the defaults for its first)."""
    summary: dict[str, Any] = {"campaign": campaign, "period": period or current_period()}
    if inbox:
        summary["ingest"] = {
            provider: ingest(folder, provider) for provider, folder in list_inbox_task(inbox)
        }
    plan = plan_revaluation_task(campaign, force, label_config)
    summary["plan"] = plan
    if plan["relabel"]:
        # None: the label flow keeps the campaign's latest label-set configuration
        summary["label"] = with_configured_runner(label)(campaign, n_labels, label_config, device=device)
    if plan["retrain"]:
        label_set_id = summary["label"]["label_set_id"] if "label" in summary else plan["latest_label_set_id"]
        summary["train"] = train(campaign, label_set_id, train_config or {}, promotion_floor, device)
    summary["score"] = with_configured_runner(score)(campaign, audit_n=audit_n, device=device)
    summary["price"] = price(campaign, summary["period"], pricing_policy, summary["score"]["score_run_id"])
    return summary
