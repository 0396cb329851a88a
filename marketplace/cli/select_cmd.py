"""``marketplace select``: the highest-valued unique samples of a campaign, written as a training set."""

from __future__ import annotations

from pathlib import Path

import typer

from marketplace.cli.common import CampaignArg, JsonOpt, ScoredVersionOpt, emit, handle_errors, in_session

__all__ = ["register"]


def select(
    campaign: str = CampaignArg,
    out: Path = typer.Argument(..., help="Training-set file: .jsonl, .csv or .parquet."),
    top: float = typer.Option(..., "--top", help="Fraction of unique samples to keep, e.g. 0.1 for the top 10%."),
    version: str | None = ScoredVersionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write the highest-valued unique (first-owner) samples as a training set."""
    from marketplace.approx.export import select_top
    from marketplace.campaigns import get_campaign

    result = in_session(lambda s: select_top(s, get_campaign(s, campaign).id, top, out, version=version), write=True)
    emit(result, as_json, lambda r: typer.echo(
        f"wrote the top {r.n_rows} unique samples by {r.model_name} v{r.model_version} to {r.path} ({r.format})"))


def register(app: typer.Typer) -> None:
    app.command("select")(handle_errors(select))
