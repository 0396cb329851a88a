"""``marketplace revalue CAMPAIGN``: the end-to-end ``revalue`` flow, once.

It honours the settings on every flow it runs: the ``label`` and ``score`` flows run on the task runner
of ``MKT_TASK_RUNNER`` / ``MKT_MAX_WORKERS`` / ``MKT_DASK_ADDRESS`` (flows.runners), and a device left
unset is ``MKT_DEVICE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, handle_errors, print_table, run_flow
from marketplace.runtime import resolve_device

__all__ = ["register"]


@handle_errors
def revalue(
    campaign: str = typer.Argument(..., help="Campaign name or id."),
    period: str | None = typer.Option(None, "--period", help="Pricing period (YYYY, YYYY-MM or YYYY-MM-DD); "
                                      "default: the current UTC month."),
    inbox: Path | None = typer.Option(None, "--inbox", help="Folder with one sub-folder per provider to ingest first."),
    n_labels: int = typer.Option(2000, "--n-labels", min=1, help="Samples to label exactly when relabeling."),
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

    dev = resolve_device(device)
    summary = run_flow(revalue_flow, f"revaluing campaign {campaign} on {dev}",
                       campaign=campaign, period=period, inbox=str(inbox) if inbox else None, n_labels=n_labels,
                       force=force, device=dev, promotion_floor=promotion_floor, audit_n=audit_n)

    def render(s: dict[str, Any]) -> None:
        plan = s["plan"]
        rows = [("plan", plan["reason"]), ("label", "ran" if "label" in s else "reused"),
                ("train", "ran" if "train" in s else "reused"),
                ("score", f"version {s['score']['version']}: {s['score']['n_scored']} new scores"),
                ("price", f"pricing run {s['price'].get('pricing_run_id')}")]
        print_table(f"revaluation of {s['campaign']} for {s['period']}", ["stage", "outcome"], rows)

    emit(summary, as_json, render)


def register(app: typer.Typer) -> None:
    app.command("revalue")(revalue)
