"""``marketplace active-label``: the unlabeled samples the approximator is least sure about."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import CampaignArg, JsonOpt, ScoredVersionOpt, emit, handle_errors, in_session, print_table

__all__ = ["register"]

_COLUMNS = ["sample_id", "provider", "score", "spread"]


def _write_ids(out: Path, rows: list[dict[str, Any]]) -> None:
    """``.csv`` / ``.jsonl``: every column; any other name: one sample id per line."""
    import pandas as pd

    from marketplace.outputs import atomic_output, write_text_atomic
    from marketplace.reports.csv_safe import write_frame

    df = pd.DataFrame(rows, columns=_COLUMNS)
    if out.suffix == ".csv":
        write_frame(out, df)
    elif out.suffix == ".jsonl":
        with atomic_output(out) as tmp:
            df.to_json(tmp, orient="records", lines=True)
    else:
        write_text_atomic(out, "".join(f"{i}\n" for i in df["sample_id"]))


def active_label(
    campaign: str = CampaignArg,
    n: int = typer.Option(..., "--n", help="How many samples to propose for exact labeling."),
    out: Path | None = typer.Option(None, "--out", help="Also write the ids (one per line, or .csv/.jsonl)."),
    version: str | None = ScoredVersionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Unlabeled samples where the ensemble heads disagree most: the best next ones to label exactly."""
    from marketplace.approx.active import rank_for_labeling
    from marketplace.campaigns import get_campaign
    from marketplace.outputs import check_output_file

    if out is not None:
        check_output_file(out)  # before any work

    model, candidates = in_session(
        lambda s: rank_for_labeling(s, get_campaign(s, campaign).id, n, version=version), write=True)
    rows = [dataclasses.asdict(c) for c in candidates]
    if out is not None:
        _write_ids(out, rows)
    data = {"model": model, "n": len(rows), "candidates": rows, "out": str(out) if out else None}
    emit(data, as_json, lambda d: print_table(
        f"next samples to label ({d['model']})", _COLUMNS,
        [(r["sample_id"], r["provider"], f"{r['score']:.4g}", f"{r['spread']:.4g}") for r in d["candidates"]]))


def register(app: typer.Typer) -> None:
    app.command("active-label")(handle_errors(active_label))
