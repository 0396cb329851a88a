"""``marketplace scores export``: the scores of a campaign's approximator versions, to a file."""

from __future__ import annotations

from pathlib import Path

import typer

from marketplace.cli.common import CampaignArg, JsonOpt, ScoredVersionOpt, emit, handle_errors, in_session

__all__ = ["register"]

scores_app = typer.Typer(help="Scores of approximator versions: export.", no_args_is_help=True)


@scores_app.command("export")
@handle_errors
def export(
    campaign: str = CampaignArg,
    out: Path = typer.Argument(..., help="Output file: .jsonl, .csv or .parquet."),
    version: str | None = ScoredVersionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write every scored sample (sample id, provider, text, score, spread, model version) to OUT."""
    from marketplace.approx.export import export_scores
    from marketplace.campaigns import get_campaign

    result = in_session(lambda s: export_scores(s, get_campaign(s, campaign).id, out, version=version), write=True)
    emit(result, as_json, lambda r: typer.echo(
        f"wrote {r.n_rows} scores of {r.model_name} v{r.model_version} to {r.path} ({r.format})"))


def register(app: typer.Typer) -> None:
    app.add_typer(scores_app, name="scores")
