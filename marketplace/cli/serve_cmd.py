"""``marketplace serve``: the scheduled deployments of infra/prefect.yaml, served locally (one process,
no work pool). A served run builds its task runner and device from the ``MKT_`` settings (flows.runners).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, handle_errors, open_db, print_table
from marketplace.errors import ConfigError

__all__ = ["register"]


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

    specs = load_deployment_specs(file or default_prefect_yaml())
    if not dry_run:
        open_db()  # the home first: Prefect keeps its runs in it ($MKT_HOME/prefect, see runtime.use_prefect_home)
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
    from prefect import serve as prefect_serve

    # A served run loads its flow from the entrypoint in a fresh process: the flow's own default task
    # runner and device (built from the MKT_ settings there, see flows.runners) apply.
    deployments = [
        flow_obj.to_deployment(name=spec.name, parameters=params, cron=list(spec.crons) or None,
                               description=spec.description or None)
        for spec, flow_obj, params in checked
    ]
    typer.echo(f"serving {len(deployments)} deployments; Ctrl-C to stop", err=True)
    prefect_serve(*deployments)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
