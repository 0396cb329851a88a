"""``marketplace report provider NAME --period P`` and ``marketplace report campaign NAME``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import (
    JsonOpt,
    emit,
    handle_errors,
    in_session,
    money,
    print_fields,
    print_table,
    settings,
)

__all__ = ["register"]

report_app = typer.Typer(help="Provider statements and buyer reports (HTML + CSV).", no_args_is_help=True)


def _out_dir(out: Path | None) -> Path:
    from marketplace.outputs import check_output_dir

    return check_output_dir(out if out is not None else settings().resolved_artifacts_dir / "reports")


def _summary(obj: Any, files: dict[str, Path]) -> dict[str, Any]:
    data = dataclasses.asdict(obj)
    data.pop("values", None)  # every sample's value: in the plot, too long for a summary
    data.pop("balance_history", None)
    if hasattr(obj, "notes"):
        data["notes"] = obj.notes
    data["files"] = {k: str(p) for k, p in files.items()}
    return data


def _render_statement(d: dict[str, Any]) -> None:
    cur = d["currency"]
    print_fields(f"statement of {d['provider_name']} (provider {d['provider_id']}), period {d['period']}", [
        ("opening balance", money(d["opening_minor"], cur)), ("credits", money(d["credits_minor"], cur)),
        ("adjustments", money(d["adjustments_minor"], cur)), ("closing balance", money(d["closing_minor"], cur))],
        columns=("", "amount"))
    for note in d["notes"]:
        print(f"note: {note}")
    print_fields("files", d["files"], columns=("kind", "path"))


def _render_buyer_report(d: dict[str, Any]) -> None:
    cur = d["currency"]
    print_table(f"buyer report {d['campaign_name']} (campaign {d['campaign_id']}), period {d['period']}",
                ["provider", "id", "samples", "paid samples", "amount"],
                [(p["provider_name"], p["provider_id"], p["n_samples"], p["n_paid"], money(p["amount_minor"], cur))
                 for p in d["providers"]], right=("id", "samples", "paid samples", "amount"))
    for u in d["unpaid"]:
        print(f"paid nothing: {u['provider_name']}: {u['reason']}")
    print_fields("files", d["files"], columns=("kind", "path"))


@report_app.command("provider")
@handle_errors
def provider(
    name: str = typer.Argument(..., help="Provider name or id."),
    period: str | None = typer.Option(None, "--period", help="Statement period, e.g. 2026-11 (default: the latest "
                                      "period with postings to this provider)."),
    currency: str | None = typer.Option(None, "--currency", help="Needed only for providers paid in several."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default $MKT_HOME/artifacts/reports)."),
    as_json: bool = JsonOpt,
) -> None:
    """A provider's statement for a period: balances, credits and adjustments with lineage, values, samples."""
    from sqlalchemy.orm import Session

    from marketplace.reports import ProviderStatement, build_provider_statement, write_statement
    from marketplace.reports.statements import require_postings

    def build(s: Session) -> ProviderStatement:
        if period is not None:
            require_postings(s, name, period)
        return build_provider_statement(s, name, period, currency=currency)

    out_dir = _out_dir(out)  # checked before any work
    st = in_session(build)
    emit(_summary(st, write_statement(st, out_dir)), as_json, _render_statement)


@report_app.command("campaign")
@handle_errors
def campaign(
    name: str = typer.Argument(..., help="Campaign name or id."),
    period: str | None = typer.Option(None, "--period", help="Period (default: the latest priced; an unpriced "
                                      "period lists the priced ones)."),
    top_k: int = typer.Option(20, "--top-k", min=1, help="How many top samples to list."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default $MKT_HOME/artifacts/reports)."),
    as_json: bool = JsonOpt,
) -> None:
    """The buyer report: value by provider and the top-k data selected, with model and label lineage."""
    from marketplace.reports import build_buyer_report, write_buyer_report

    out_dir = _out_dir(out)  # checked before any work
    rep = in_session(lambda s: build_buyer_report(s, name, period, top_k=top_k))
    emit(_summary(rep, write_buyer_report(rep, out_dir)), as_json, _render_buyer_report)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
