"""``marketplace label``: exact LinFiK labels for a stratified subsample of a campaign (the ``label`` flow)."""

from __future__ import annotations

from typing import Any

import typer

from marketplace.cli.common import CampaignArg, JsonOpt, emit, handle_errors, option_error, run_flow, settings
from marketplace.cli.labels_cmd import render_label_set
from marketplace.db.engine import session_scope
from marketplace.errors import ConfigError
from marketplace.runtime import resolve_device, session_factory

__all__ = ["register"]


def label(
    campaign: str = CampaignArg,
    n: int = typer.Option(..., "--n", help="How many samples to label (stratified by provider)."),
    seed: int | None = typer.Option(None, "--seed", help="Subsample and projection seed (default MKT_SEED)."),
    rank_in: int | None = typer.Option(None, "--rank-in",
                                       help="LoGra input-side rank per layer (capped by layer dims; default 64)."),
    rank_out: int | None = typer.Option(None, "--rank-out",
                                        help="LoGra output-side rank per layer (capped by layer dims; default 64)."),
    preconditioner: str | None = typer.Option(None, "--preconditioner", help="identity (the default), fisher or kfac."),
    damping: float | None = typer.Option(None, "--damping",
                                         help="Damping λ as a fraction of the mean eigenvalue of H (default 0.1)."),
    cosine: bool | None = typer.Option(None, "--cosine/--no-cosine",
                                       help="Normalise each sample gradient to unit length (the default); "
                                            "--no-cosine: plain LinFiK's dot product, which grows with the "
                                            "gradient's size."),
    weighting: str | None = typer.Option(None, "--weighting",
                                         help="sample (each sample one unit of a step) or token (the default: "
                                              "scaled by its token count, as in a token-averaged LM loss)."),
    reference: str | None = typer.Option(None, "--reference",
                                         help="none (plain LinFiK) or pool (the default: the target gradient minus "
                                              "the mean gradient of the labeled samples: value relative to an "
                                              "average pool sample)."),
    eta: float | None = typer.Option(None, "--eta",
                                     help="SGD step size η of the campaign's target model (default 1e-3)."),
    checkpoint: list[str] = typer.Option([], "--checkpoint", help="Extra checkpoint DIR:ETA, summed (repeatable)."),
    module: list[str] = typer.Option([], "--module", help="fnmatch pattern of watched layers (repeatable)."),
    max_length: int | None = typer.Option(None, "--max-length",
                                          help="Truncate samples to this many tokens (default 256)."),
    store_dtype: str | None = typer.Option(None, "--store-dtype",
                                           help="Stored gradient dtype: float32 (the default) or float16."),
    batch_size: int = typer.Option(8, "--batch-size", help="Samples per forward/backward pass."),
    shard_size: int = typer.Option(512, "--shard-size", help="Samples per shard (unit of work, storage, retry)."),
    task_runner: str | None = typer.Option(None, "--task-runner", help="thread or dask (default MKT_TASK_RUNNER)."),
    workers: int | None = typer.Option(None, "--workers", help="Parallel shard workers (default MKT_MAX_WORKERS)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (default MKT_DEVICE)."),
    as_json: bool = JsonOpt,
) -> None:
    """Exact LinFiK labels for a stratified subsample of the pool (runs the Prefect flow `label`)."""
    from flows.runners import build_task_runner
    from marketplace.valuation.config import DEFAULT_MODULE_PATTERNS, CheckpointSpec, LinFiKConfig, ProjectionConfig
    from marketplace.valuation.runs import preflight_label

    cfg = settings()
    runner = build_task_runner(kind=task_runner, max_workers=workers)
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive, got {batch_size}")
    given: dict[str, Any] = {"preconditioner": preconditioner, "damping_ratio": damping, "cosine": cosine, "eta": eta,
                             "weighting": weighting, "reference": reference, "max_length": max_length,
                             "store_dtype": store_dtype}
    ranks: dict[str, Any] = {"rank_in": rank_in, "rank_out": rank_out}
    try:  # an option left out keeps the library default (LinFiKConfig)
        config = LinFiKConfig(
            projection=ProjectionConfig(seed=cfg.seed if seed is None else seed,
                                        module_patterns=tuple(module) or DEFAULT_MODULE_PATTERNS,
                                        **{k: v for k, v in ranks.items() if v is not None}),
            checkpoints=tuple(CheckpointSpec.parse(c) for c in checkpoint),
            **{k: v for k, v in given.items() if v is not None},
        )
    except ValueError as exc:  # pydantic's ValidationError too
        raise option_error(exc, "labeling") from exc
    dev = resolve_device(device)
    with session_scope(session_factory(cfg)) as session:
        preflight_label(session, campaign, n)  # before Prefect starts: bad input fails in a second, not after 20

    from flows.label import label as label_flow

    summary = run_flow(
        label_flow, f"labeling {n} samples of campaign {campaign} ({config.preconditioner}, {config.weighting} "
                    f"weighting, {config.reference} reference{', cosine' if config.cosine else ''}, ranks "
                    f"{config.projection.rank_out}×{config.projection.rank_in}, "
                    f"{task_runner or cfg.task_runner} runner, {dev})",
        task_runner=runner, campaign=campaign, n=n, config=config.model_dump(mode="json"), shard_size=shard_size,
        batch_size=batch_size, device=dev)
    emit(summary, as_json, render_label_set)


def register(app: typer.Typer) -> None:
    app.command("label")(handle_errors(label))
