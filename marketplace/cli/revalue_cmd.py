"""``marketplace revalue CAMPAIGN``: the end-to-end ``revalue`` flow, once.

It honours the settings on every flow it runs: the ``label`` and ``score`` flows run on the task runner
of ``MKT_TASK_RUNNER`` / ``MKT_MAX_WORKERS`` / ``MKT_DASK_ADDRESS`` (flows.runners), and a device left
unset is ``MKT_DEVICE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, handle_errors, money, print_table, run_flow
from marketplace.cli.outcomes import audit_outcome, gate_outcome
from marketplace.demo import DEMO_SIZES
from marketplace.runtime import resolve_device

__all__ = ["register"]


@handle_errors
def revalue(
    campaign: str = typer.Argument(..., help="Campaign name or id."),
    period: str | None = typer.Option(None, "--period", help="Pricing period (YYYY, YYYY-MM or YYYY-MM-DD); "
                                      "default: the current UTC month."),
    inbox: Path | None = typer.Option(None, "--inbox", help="Folder with one sub-folder per provider (named by the "
                                      "provider) to ingest first; see README, 'For operators'."),
    n_labels: int = typer.Option(DEMO_SIZES["default"].n_labels, "--n-labels", min=1,
                                 help="Samples to label exactly when relabeling (default: the demo's)."),
    force: bool = typer.Option(False, "--force", help="Relabel and retrain even if the pool did not change."),
    device: str | None = typer.Option(None, "--device",
                                      help="cpu, cuda, cuda:N or auto for labeling, training and scoring "
                                           "(default MKT_DEVICE)."),
    promotion_floor: float = typer.Option(
        0.5, "--promotion-floor", min=-1.0, max=1.0,
        help="Smallest held-out Spearman(approximator, labels) for a new version to become champion."),
    audit_n: int = typer.Option(100, "--audit-n", min=1, help="Samples audited against exact LinFiK after scoring."),
    as_json: bool = JsonOpt,
) -> None:
    """Run ingest-new → label → train → score → price for CAMPAIGN (the `revalue` flow)."""
    from flows.revalue import revalue as revalue_flow
    from marketplace.inbox import list_provider_folders

    dev = resolve_device(device)
    if inbox is not None:
        list_provider_folders(inbox)  # a malformed inbox is a one-line error before Prefect starts
    summary = run_flow(revalue_flow, f"revaluing campaign {campaign} on {dev}",
                       campaign=campaign, period=period, inbox=str(inbox) if inbox else None, n_labels=n_labels,
                       force=force, device=dev, promotion_floor=promotion_floor, audit_n=audit_n)

    emit(summary, as_json, render_summary)


def _price_outcome(price: dict[str, Any]) -> str:
    run = f"pricing run {price.get('pricing_run_id')}"
    if "allocated_minor" not in price:
        return run
    cur = price["currency"]
    return (f"{run}: {money(price['allocated_minor'], cur)} of {money(price['budget_minor'], cur)} allocated to "
            f"{price.get('n_paid')} samples")


def render_summary(s: dict[str, Any]) -> None:
    """The revaluation's stages as a table: what ran, the gate's decision, the audit and the payout."""
    plan, score, price = s["plan"], s["score"], s["price"]
    label = s.get("label")
    rows = [("plan", plan["reason"]),
            ("label", f"{label.get('n_labeled')} exact labels (label set "
                      f"{label.get('label_set_id')})" if label else f"reused label set {plan['latest_label_set_id']}"),
            ("train", gate_outcome(s.get("train"))),
            ("score", f"{score['model_name']} v{score['version']}: {score['n_scored']} new scores"),
            ("audit", audit_outcome(score.get("audit"))),
            ("price", _price_outcome(price))]
    print_table(f"revaluation of {s['campaign']} for {s['period']}", ["stage", "outcome"], rows)


def register(app: typer.Typer) -> None:
    app.command("revalue")(revalue)
