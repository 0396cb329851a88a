"""``marketplace labels export|list|show``: label sets (exact LinFiK teacher labels)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, handle_errors, in_session, print_fields, print_table

__all__ = ["register", "render_label_set"]

labels_app = typer.Typer(help="Label sets (exact LinFiK teacher labels): list, show, export.", no_args_is_help=True)

_SUMMARY_KEYS = ("label_set_id", "campaign_id", "status", "n_requested", "n_labeled", "config_hash",
                 "target_model_digest", "target_data_digest", "projection_seed", "store_uri", "reused",
                 "shards_computed", "shards_skipped")


def render_label_set(d: dict[str, Any]) -> None:
    """A label set summary (``label`` flow result or ``describe_label_set``) as one table."""
    rows: list[tuple[str, Any]] = [(k, d[k]) for k in _SUMMARY_KEYS if k in d]
    rows += [(f"score {k}", v) for k, v in d.get("stats", {}).items() if not isinstance(v, list | dict)]
    print_fields(f"label set {d.get('label_set_id')}", rows)


@labels_app.command("export")
@handle_errors
def export(
    label_set: int = typer.Argument(..., help="Label set id."),
    out: Path = typer.Argument(..., help="Output file: .jsonl, .csv or .parquet."),
    as_json: bool = JsonOpt,
) -> None:
    """Write every label (sample id, provider, text, score) to OUT; the format follows the extension."""
    from marketplace.valuation.export import export_labels

    data = in_session(lambda s: export_labels(s, label_set, out))
    emit(data, as_json, lambda d: typer.echo(f"wrote {d['rows']} labels to {d['path']} ({d['format']})"))


@labels_app.command("list")
@handle_errors
def list_(
    campaign: str | None = typer.Option(None, "--campaign", help="Only this campaign (id or name)."),
    as_json: bool = JsonOpt,
) -> None:
    """Label sets, newest first."""
    from sqlalchemy import select

    from marketplace.campaigns import get_campaign
    from marketplace.db import LabelSet

    def rows(session: Any) -> list[dict[str, Any]]:
        stmt = select(LabelSet).order_by(LabelSet.id.desc())
        if campaign is not None:
            stmt = stmt.where(LabelSet.campaign_id == get_campaign(session, campaign).id)
        return [
            {"id": ls.id, "campaign_id": ls.campaign_id, "status": str(ls.status), "n_requested": ls.n_requested,
             "n_labeled": ls.n_labeled, "preconditioner": ls.config.get("preconditioner"),
             "config_hash": ls.config_hash[:12], "created_at": ls.created_at.isoformat()}
            for ls in session.execute(stmt).scalars()
        ]

    emit(in_session(rows), as_json, lambda d: print_table("label sets", list(d[0]) if d else ["id"],
                                                          [list(r.values()) for r in d]))


@labels_app.command("show")
@handle_errors
def show(label_set: int = typer.Argument(..., help="Label set id."), as_json: bool = JsonOpt) -> None:
    """A label set's configuration, lineage and score statistics."""
    from marketplace.valuation import describe_label_set

    data = in_session(lambda s: dataclasses.asdict(describe_label_set(s, label_set)))
    emit(data, as_json, render_label_set)


def register(app: typer.Typer) -> None:
    app.add_typer(labels_app, name="labels")
