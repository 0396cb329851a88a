"""``marketplace report provider NAME --period P`` and ``marketplace report campaign NAME``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, handle_errors, in_session, print_fields, print_table, settings

__all__ = ["register"]

report_app = typer.Typer(help="Provider statements and buyer reports (HTML + CSV).", no_args_is_help=True)


def _out_dir(out: Path | None) -> Path:
    return out if out is not None else settings().resolved_artifacts_dir / "reports"


def _summary(obj: Any, files: dict[str, Path]) -> dict[str, Any]:
    data = dataclasses.asdict(obj)
    data.pop("values", None)  # every sample's value: in the plot, too long for a summary
    data["files"] = {k: str(p) for k, p in files.items()}
    return data


def _render_statement(d: dict[str, Any]) -> None:
    print_fields(f"statement {d['provider_name']} {d['period']} ({d['currency']})", [
        ("opening", d["opening_minor"]), ("credits", d["credits_minor"]), ("adjustments", d["adjustments_minor"]),
        ("closing", d["closing_minor"])], columns=("", "minor units"))
    print_fields("files", d["files"], columns=("kind", "path"))


def _render_buyer_report(d: dict[str, Any]) -> None:
    print_table(f"buyer report {d['campaign_name']} {d['period']}", ["provider", "samples", "amount_minor"],
                ((p["provider_name"], p["n_samples"], p["amount_minor"]) for p in d["providers"]))
    print_fields("files", d["files"], columns=("kind", "path"))


@report_app.command("provider")
@handle_errors
def provider(
    name: str = typer.Argument(..., help="Provider name or id."),
    period: str = typer.Option(..., "--period", help="Statement period, e.g. 2026-11."),
    currency: str | None = typer.Option(None, "--currency", help="Needed only for providers paid in several."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default $MKT_HOME/artifacts/reports)."),
    as_json: bool = JsonOpt,
) -> None:
    """A provider's statement for a period: balances, credits and adjustments with lineage, values, samples."""
    from marketplace.reports import build_provider_statement, write_statement

    st = in_session(lambda s: build_provider_statement(s, name, period, currency=currency))
    emit(_summary(st, write_statement(st, _out_dir(out))), as_json, _render_statement)


@report_app.command("campaign")
@handle_errors
def campaign(
    name: str = typer.Argument(..., help="Campaign name or id."),
    period: str | None = typer.Option(None, "--period", help="Period (default: the latest priced)."),
    top_k: int = typer.Option(20, "--top-k", min=1, help="How many top samples to list."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default $MKT_HOME/artifacts/reports)."),
    as_json: bool = JsonOpt,
) -> None:
    """The buyer report: value by provider and the top-k data selected, with model and label lineage."""
    from marketplace.reports import build_buyer_report, write_buyer_report

    rep = in_session(lambda s: build_buyer_report(s, name, period, top_k=top_k))
    emit(_summary(rep, write_buyer_report(rep, _out_dir(out))), as_json, _render_buyer_report)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
