"""``marketplace model build-demo|digest``, ``marketplace label`` and ``marketplace labels export|list|show``.

Heavy imports (torch, transformers, prefect) happen inside the commands, so ``--help`` stays fast.
This edge resolves the device (``auto`` → ``cuda`` when available, else ``cpu``) and the task runner.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, err_console, handle_errors, open_db, print_table, settings
from marketplace.errors import ConfigError

__all__ = ["register", "resolve_device"]

log = logging.getLogger(__name__)

model_app = typer.Typer(help="Target models: build the demo model, digest a checkpoint folder.", no_args_is_help=True)
labels_app = typer.Typer(help="Label sets (exact LinFiK teacher labels): list, show, export.", no_args_is_help=True)


def resolve_device(name: str) -> str:
    """The edge's device choice: ``auto`` → ``cuda`` if available else ``cpu``; others are checked."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:N or auto") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} asked for CUDA but no GPU is available; use --device cpu")
    return str(dev)


def _progress(message: str) -> None:
    err_console.print(f"[dim]{message}[/]", highlight=False)


# --- model ----------------------------------------------------------------------------------------------


@model_app.command("build-demo")
@handle_errors
def build_demo(
    out: Path = typer.Argument(..., help="Folder to write the model + tokenizer to (reused when up to date)."),
    seed: int = typer.Option(0, "--seed", help="Seed for text order, initialisation and batches."),
    arch: str = typer.Option("gpt2", "--arch", help="gpt2 (Conv1D layers) or llama (nn.Linear layers)."),
    steps: int | None = typer.Option(None, "--steps", help="Training steps (default 400, ~3 min on 2 cores)."),
    layers: int | None = typer.Option(None, "--layers", help="Transformer blocks (default 4)."),
    d_model: int | None = typer.Option(None, "--d-model", help="Model width (default 128)."),
    heads: int | None = typer.Option(None, "--heads", help="Attention heads (default 4)."),
    vocab_size: int | None = typer.Option(None, "--vocab-size", help="BPE vocabulary size (default 8192)."),
    context: int | None = typer.Option(None, "--context", help="Context length in tokens (default 256)."),
    text_chars: int | None = typer.Option(None, "--text-chars", help="Characters of training text (default 4M)."),
    as_json: bool = JsonOpt,
) -> None:
    """Build the demo target model: BPE tokenizer + small causal LM trained briefly on local real text."""
    from pydantic import ValidationError as PydanticValidationError

    from marketplace.valuation.demo_model import DemoModelConfig, build_demo_model

    overrides: dict[str, Any] = {"arch": arch, "train_steps": steps, "n_layer": layers, "d_model": d_model,
                                 "n_head": heads, "vocab_size": vocab_size, "context": context,
                                 "text_chars": text_chars}
    try:
        cfg = DemoModelConfig(**{k: v for k, v in overrides.items() if v is not None})
    except PydanticValidationError as exc:
        raise ConfigError(f"invalid demo model option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc
    _progress(f"building demo model in {out} (a few minutes the first time; cached after)")
    result = build_demo_model(out, cfg, seed=seed)
    data = result.model_dump(exclude={"manifest"})
    emit(data, as_json, lambda d: print_table("demo model", ["field", "value"], d.items()))


@model_app.command("digest")
@handle_errors
def digest(
    path: Path = typer.Argument(..., help="A causal-LM checkpoint folder."), as_json: bool = JsonOpt
) -> None:
    """sha256 digest of a checkpoint folder (config, weights, tokenizer files)."""
    from marketplace.valuation.target_model import digest_model_dir

    data = {"path": str(path.resolve()), "digest": digest_model_dir(path)}
    emit(data, as_json, lambda d: typer.echo(f"{d['digest']}  {d['path']}"))


# --- label ----------------------------------------------------------------------------------------------


def _render_summary(d: dict[str, Any]) -> None:
    stats = d.get("stats", {})
    keys = ("label_set_id", "campaign_id", "status", "n_requested", "n_labeled", "config_hash", "target_model_digest",
            "target_data_digest", "projection_seed", "store_uri", "reused", "shards_computed", "shards_skipped")
    rows: list[tuple[str, Any]] = [(k, d[k]) for k in keys if k in d]
    rows += [(f"score {k}", v) for k, v in stats.items() if not isinstance(v, list | dict)]
    print_table(f"label set {d.get('label_set_id')}", ["field", "value"], rows)


def label(
    campaign: str = typer.Argument(..., help="Campaign id or name."),
    n: int = typer.Option(..., "--n", help="How many samples to label (stratified by provider)."),
    seed: int | None = typer.Option(None, "--seed", help="Subsample and projection seed (default MKT_SEED)."),
    rank_in: int = typer.Option(64, "--rank-in", help="LoGra input-side rank per layer (capped by layer dims)."),
    rank_out: int = typer.Option(64, "--rank-out", help="LoGra output-side rank per layer (capped by layer dims)."),
    preconditioner: str = typer.Option("identity", "--preconditioner", help="identity, fisher or kfac."),
    damping: float = typer.Option(0.1, "--damping", help="Damping λ as a fraction of the mean eigenvalue of H."),
    cosine: bool = typer.Option(False, "--cosine", help="Normalise each sample gradient to unit length."),
    weighting: str = typer.Option("sample", "--weighting",
                                  help="sample (each sample one unit of a step) or token (scaled by its token "
                                       "count, as in a token-averaged LM loss)."),
    eta: float = typer.Option(1e-3, "--eta", help="SGD step size η of the campaign's target model."),
    checkpoint: list[str] = typer.Option([], "--checkpoint", help="Extra checkpoint DIR:ETA, summed (repeatable)."),
    module: list[str] = typer.Option([], "--module", help="fnmatch pattern of watched layers (repeatable)."),
    max_length: int = typer.Option(256, "--max-length", help="Truncate samples to this many tokens."),
    store_dtype: str = typer.Option("float32", "--store-dtype", help="Stored gradient dtype: float32 or float16."),
    batch_size: int = typer.Option(8, "--batch-size", help="Samples per forward/backward pass."),
    shard_size: int = typer.Option(512, "--shard-size", help="Samples per shard (unit of work, storage, retry)."),
    task_runner: str | None = typer.Option(None, "--task-runner", help="thread or dask (default MKT_TASK_RUNNER)."),
    workers: int | None = typer.Option(None, "--workers", help="Parallel shard workers (default MKT_MAX_WORKERS)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (default MKT_DEVICE)."),
    as_json: bool = JsonOpt,
) -> None:
    """Exact LinFiK labels for a stratified subsample of the pool (runs the Prefect flow `label`)."""
    from pydantic import ValidationError as PydanticValidationError

    from marketplace.valuation.config import DEFAULT_MODULE_PATTERNS, CheckpointSpec, LinFiKConfig, ProjectionConfig

    cfg = settings()
    runner = task_runner or cfg.task_runner
    if runner not in ("thread", "dask"):
        raise ConfigError(f"--task-runner {runner!r}: use thread or dask")
    if batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive, got {batch_size}")
    try:
        config = LinFiKConfig(
            projection=ProjectionConfig(rank_in=rank_in, rank_out=rank_out, seed=cfg.seed if seed is None else seed,
                                        module_patterns=tuple(module) or DEFAULT_MODULE_PATTERNS),
            preconditioner=preconditioner,  # type: ignore[arg-type]  # validated by pydantic
            damping_ratio=damping, cosine=cosine, eta=eta, weighting=weighting,  # type: ignore[arg-type]
            checkpoints=tuple(CheckpointSpec.parse(c) for c in checkpoint),
            max_length=max_length, store_dtype=store_dtype,  # type: ignore[arg-type]
        )
    except (PydanticValidationError, ValueError) as exc:
        if isinstance(exc, PydanticValidationError):
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "value"
            raise ConfigError(f"invalid labeling option {where}: {err['msg']}") from exc
        raise ConfigError(str(exc)) from exc
    dev = resolve_device(device or cfg.device)
    open_db()  # schema up to date before tasks open their own sessions

    from flows.label import label as label_flow
    from flows.label import make_task_runner

    _progress(f"labeling {n} samples of campaign {campaign} ({config.preconditioner}, {config.weighting} weighting, "
              f"ranks {rank_out}×{rank_in}, "
              f"{runner} runner, {dev})")
    flow = label_flow.with_options(task_runner=make_task_runner(runner, workers or cfg.max_workers,  # type: ignore[arg-type]
                                                                cfg.dask_address))
    summary = flow(campaign=campaign, n=n, config=config.model_dump(mode="json"), shard_size=shard_size,
                   batch_size=batch_size, device=dev)
    emit(summary, as_json, _render_summary)


# --- labels ---------------------------------------------------------------------------------------------


@labels_app.command("export")
@handle_errors
def export(
    label_set: int = typer.Argument(..., help="Label set id."),
    out: Path = typer.Argument(..., help="Output file: .jsonl, .csv or .parquet."),
    as_json: bool = JsonOpt,
) -> None:
    """Write every label (sample id, provider, text, score) to OUT; the format follows the extension."""
    from marketplace.valuation.export import export_labels

    _, factory = open_db()
    with factory() as session:
        data = export_labels(session, label_set, out)
    emit(data, as_json, lambda d: typer.echo(f"wrote {d['rows']} labels to {d['path']} ({d['format']})"))


@labels_app.command("list")
@handle_errors
def list_(
    campaign: str | None = typer.Option(None, "--campaign", help="Only this campaign (id or name)."),
    as_json: bool = JsonOpt,
) -> None:
    """Label sets, newest first."""
    from sqlalchemy import select

    from marketplace.db import LabelSet
    from marketplace.valuation.runs import resolve_campaign

    _, factory = open_db()
    with factory() as session:
        stmt = select(LabelSet).order_by(LabelSet.id.desc())
        if campaign is not None:
            stmt = stmt.where(LabelSet.campaign_id == resolve_campaign(session, campaign).id)
        rows = [
            {"id": ls.id, "campaign_id": ls.campaign_id, "status": str(ls.status), "n_requested": ls.n_requested,
             "n_labeled": ls.n_labeled, "preconditioner": ls.config.get("preconditioner"),
             "config_hash": ls.config_hash[:12], "created_at": ls.created_at.isoformat()}
            for ls in session.execute(stmt).scalars()
        ]
    emit(rows, as_json, lambda d: print_table("label sets", list(d[0]) if d else ["id"],
                                              [list(r.values()) for r in d]))


@labels_app.command("show")
@handle_errors
def show(label_set: int = typer.Argument(..., help="Label set id."), as_json: bool = JsonOpt) -> None:
    """A label set's configuration, lineage and score statistics."""
    import dataclasses

    from marketplace.valuation.labeling import describe_label_set

    _, factory = open_db()
    with factory() as session:
        data = dataclasses.asdict(describe_label_set(session, label_set))
    emit(data, as_json, _render_summary)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
    app.add_typer(labels_app, name="labels")
    app.command("label")(handle_errors(label))
