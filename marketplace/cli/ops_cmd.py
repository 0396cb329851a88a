"""Operator commands: ``marketplace revalue`` and ``marketplace serve``."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import JsonOpt, apply_offline_env, emit, handle_errors, open_db, print_table
from marketplace.errors import ConfigError

__all__ = ["register"]


@handle_errors
def revalue(
    campaign: str = typer.Argument(..., help="Campaign name or id."),
    period: str | None = typer.Option(None, "--period", help="Pricing period (YYYY, YYYY-MM or YYYY-MM-DD); "
                                      "default: the current UTC month."),
    inbox: Path | None = typer.Option(None, "--inbox", help="Folder with one sub-folder per provider to ingest first."),
    n_labels: int = typer.Option(2000, "--n-labels", min=1, help="Samples to label exactly when relabeling."),
    force: bool = typer.Option(False, "--force", help="Relabel and retrain even if the pool did not change."),
    device: str = typer.Option("cpu", "--device", help="Torch device for labeling and scoring."),
    promotion_floor: float = typer.Option(
        0.5, "--promotion-floor", min=-1.0, max=1.0,
        help="Smallest held-out Spearman(approximator, labels) for a new version to become champion."),
    audit_n: int = typer.Option(100, "--audit-n", min=1, help="Samples audited against exact LinFiK after scoring."),
    as_json: bool = JsonOpt,
) -> None:
    """Run ingest-new → label → train → score → price for CAMPAIGN (the `revalue` flow)."""
    apply_offline_env()
    open_db()  # schema up to date before the flow's tasks open their own sessions
    from flows.revalue import revaluation

    summary = revaluation(campaign, period=period, inbox=str(inbox) if inbox else None, n_labels=n_labels,
                          force=force, device=device, promotion_floor=promotion_floor, audit_n=audit_n)

    def render(s: dict[str, Any]) -> None:
        plan = s["plan"]
        rows = [("plan", plan["reason"]), ("label", "ran" if "label" in s else "reused"),
                ("train", "ran" if "train" in s else "reused"),
                ("score", f"version {s['score']['version']}: {s['score']['n_scored']} new scores"),
                ("price", f"pricing run {s['price'].get('pricing_run_id')}")]
        print_table(f"revaluation of {s['campaign']} for {s['period']}", ["stage", "outcome"], rows)

    emit(summary, as_json, render)


def _load_flow(module: str, attribute: str) -> Any:
    try:
        obj = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"entrypoint {module}:{attribute} does not name a flow: {exc}") from exc
    if not hasattr(obj, "to_deployment"):
        raise ConfigError(f"entrypoint {module}:{attribute} is not a Prefect flow")
    return obj


@handle_errors
def serve(
    file: Path | None = typer.Option(None, "--file", help="Deployment file (default: infra/prefect.yaml)."),
    campaign: str | None = typer.Option(None, "--campaign", help="Campaign for every deployment."),
    only: list[str] = typer.Option([], "--only", help="Serve only these deployment names (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and list the deployments, then exit."),
    as_json: bool = JsonOpt,
) -> None:
    """Serve the scheduled deployments of infra/prefect.yaml locally (one process, no work pool)."""
    from marketplace.deployments import default_prefect_yaml, load_deployment_specs

    apply_offline_env()
    specs = load_deployment_specs(file or default_prefect_yaml())
    if only:
        unknown = set(only) - {s.name for s in specs}
        if unknown:
            raise ConfigError(f"--only names unknown deployments {sorted(unknown)}; known: {[s.name for s in specs]}")
        specs = [s for s in specs if s.name in only]
    checked = []
    for spec in specs:
        flow_obj = _load_flow(spec.module, spec.attribute)
        params = dict(spec.parameters)
        if campaign and "campaign" in params:
            params["campaign"] = campaign
        try:
            inspect.signature(flow_obj.fn).bind_partial(**params)
        except TypeError as exc:
            raise ConfigError(f"deployment {spec.name}: parameters {sorted(params)} do not fit {spec.entrypoint}: "
                              f"{exc}") from exc
        checked.append((spec, flow_obj, params))
    listing = [{"name": s.name, "entrypoint": s.entrypoint, "crons": list(s.crons), "parameters": p}
               for s, _, p in checked]
    if dry_run:
        emit(listing, as_json, lambda rows: print_table(
            "deployments", ["name", "entrypoint", "schedule"],
            [(r["name"], r["entrypoint"], ", ".join(r["crons"])) for r in rows]))
        return
    open_db()
    from prefect import serve as prefect_serve

    deployments = [
        flow_obj.to_deployment(name=spec.name, parameters=params, cron=list(spec.crons) or None,
                               description=spec.description or None)
        for spec, flow_obj, params in checked
    ]
    typer.echo(f"serving {len(deployments)} deployments; Ctrl-C to stop", err=True)
    prefect_serve(*deployments)


def register(app: typer.Typer) -> None:
    app.command("revalue")(revalue)
    app.command("serve")(serve)
