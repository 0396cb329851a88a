"""``marketplace score``: score every sample with the champion in shards, then audit (the ``score`` flow)."""

from __future__ import annotations

from typing import Any

import typer

from marketplace.cli.common import CampaignArg, JsonOpt, emit, handle_errors, print_fields, run_flow, settings
from marketplace.errors import ConfigError
from marketplace.runtime import resolve_device

__all__ = ["register"]


def _render(d: dict[str, Any]) -> None:
    print_fields("score run", [
        ("score run", d["score_run_id"]), ("model", f"{d['model_name']} v{d['version']}"),
        ("resolved from", d["resolved_from"]), ("to score", d["n_todo"]), ("scored", d["n_scored"]),
        ("embedded (cache misses)", d["n_embedded"]), ("shards", d["n_shards"]), ("audit", d["audit"]["reason"])])


def score(
    campaign: str = CampaignArg,
    version: str | None = typer.Option(None, "--version", help="Score with this version instead of @champion."),
    shard_size: int = typer.Option(2000, "--shard-size", help="Samples per shard (unit of work and retry)."),
    first_owners_only: bool = typer.Option(False, "--first-owners-only", help="Skip duplicates (never paid)."),
    audit_n: int = typer.Option(100, "--audit-n", help="Samples labeled exactly for the audit (0: skip)."),
    audit_seed: int | None = typer.Option(None, "--audit-seed", help="Audit sample seed (default MKT_SEED)."),
    audit_labeler: str = typer.Option("linfik", "--audit-labeler",
                                      help="linfik, none, or package.module:factory (tests)."),
    task_runner: str | None = typer.Option(None, "--task-runner", help="thread or dask (default MKT_TASK_RUNNER)."),
    workers: int | None = typer.Option(None, "--workers", help="Parallel shard workers (default MKT_MAX_WORKERS)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (default MKT_DEVICE)."),
    as_json: bool = JsonOpt,
) -> None:
    """Score every sample not yet scored by the champion, in shards; audit against exact LinFiK
    (runs the Prefect flow `score`). Exits with code 8 when the audit fails."""
    if shard_size < 1:
        raise ConfigError(f"--shard-size must be positive, got {shard_size}")
    if audit_n < 0:
        raise ConfigError(f"--audit-n must be ≥ 0, got {audit_n}")
    dev = resolve_device(device)

    from flows.runners import build_task_runner
    from flows.score import score as score_flow

    runner = build_task_runner(kind=task_runner, max_workers=workers)
    summary = run_flow(score_flow, f"scoring campaign {campaign} with {version or '@champion'} on {dev}",
                       task_runner=runner, campaign=campaign, version=version, shard_size=shard_size,
                       first_owners_only=first_owners_only, audit_n=audit_n,
                       audit_seed=settings().seed if audit_seed is None else audit_seed, audit_labeler=audit_labeler,
                       device=dev)
    emit(summary, as_json, _render)


def register(app: typer.Typer) -> None:
    app.command("score")(handle_errors(score))
