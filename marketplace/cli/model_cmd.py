"""``marketplace model build-demo|digest``: target models (heavy imports happen inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, handle_errors, option_error, print_fields, progress

__all__ = ["register"]

model_app = typer.Typer(help="Target models: build the demo model, digest a checkpoint folder.", no_args_is_help=True)


@model_app.command("build-demo")
@handle_errors
def build_demo(
    out: Path = typer.Argument(..., help="Folder to write the model + tokenizer to (reused when up to date)."),
    seed: int = typer.Option(0, "--seed", help="Seed for text order, initialisation and batches."),
    arch: str = typer.Option("gpt2", "--arch", help="gpt2 (Conv1D layers) or llama (nn.Linear layers)."),
    steps: int | None = typer.Option(None, "--steps", help="Training steps (default 200, about a minute on 2 cores)."),
    layers: int | None = typer.Option(None, "--layers", help="Transformer blocks (default 4)."),
    d_model: int | None = typer.Option(None, "--d-model", help="Model width (default 128)."),
    heads: int | None = typer.Option(None, "--heads", help="Attention heads (default 4)."),
    vocab_size: int | None = typer.Option(None, "--vocab-size", help="BPE vocabulary size (default 4096)."),
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
        raise option_error(exc, "demo model") from exc
    progress(f"building demo model in {out} (a few minutes the first time; cached after)")
    result = build_demo_model(out, cfg, seed=seed)
    emit(result.model_dump(exclude={"manifest"}), as_json, lambda d: print_fields("demo model", d))


@model_app.command("digest")
@handle_errors
def digest(
    path: Path = typer.Argument(..., help="A causal-LM checkpoint folder."), as_json: bool = JsonOpt
) -> None:
    """sha256 digest of a checkpoint folder (config, weights, tokenizer files)."""
    from marketplace.valuation.target_model import digest_model_dir

    data = {"path": str(path.resolve()), "digest": digest_model_dir(path)}
    emit(data, as_json, lambda d: typer.echo(f"{d['digest']}  {d['path']}"))


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
