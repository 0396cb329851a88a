"""``marketplace train``: learn ALinFiK from a label set, register it, gate the champion (the ``train`` flow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import (
    CampaignArg,
    JsonOpt,
    emit,
    handle_errors,
    option_error,
    print_table,
    run_flow,
    settings,
)
from marketplace.errors import ConfigError
from marketplace.runtime import resolve_device

__all__ = ["register"]

_METRIC_ROWS = (("ALinFiK", "approx_"), ("TF-IDF + ridge", "tfidf_ridge_"), ("target cosine", "target_cosine_"))
_METRICS = ("spearman", "pearson", "kendall", "precision_at_10")


def _render(d: dict[str, Any]) -> None:
    m = d["metrics"]
    print_table(f"{d['model_name']} v{d['version']}",
                [f"held-out (n={int(m.get('approx_n', 0))})", "spearman", "pearson", "kendall", "precision@10%"],
                [(who, *(f"{m.get(f'{prefix}{k}', float('nan')):.3f}" for k in _METRICS))
                 for who, prefix in _METRIC_ROWS])
    typer.echo(f"{'PROMOTED to champion' if d['promoted'] else 'kept as candidate'}: {d['reason']}")


def train(
    campaign: str = CampaignArg,
    label_set: int | None = typer.Option(None, "--label-set", help="Label set id (default: the latest complete)."),
    mode: str = typer.Option("frozen", "--mode", help="frozen (encoder features + heads) or finetune (encoder "
                             "trained with MLP heads)."),
    head: str | None = typer.Option(None, "--head", help="ridge (frozen default: bootstrap ridge regressions, "
                                    "penalty by leave-one-out) or mlp (MLPs with early stopping; finetune)."),
    features: str | None = typer.Option(None, "--features",
                                        help="stacked (transformer default: hidden states 0..layer + text "
                                             "statistics) or pooled (hidden state layer alone)."),
    seed: int | None = typer.Option(None, "--seed", help="Training seed (default MKT_SEED)."),
    heads: int = typer.Option(5, "--heads", help="Ensemble size (the spread is the uncertainty)."),
    hidden: int = typer.Option(128, "--hidden", help="Hidden units per head."),
    epochs: int | None = typer.Option(None, "--epochs", help="Max epochs (default 200 frozen, 4 finetune)."),
    patience: int | None = typer.Option(None, "--patience", help="Early-stopping patience in epochs."),
    lr: float = typer.Option(1e-3, "--lr", help="Head learning rate (AdamW)."),
    rank_weight: float = typer.Option(0.5, "--rank-weight", help="Weight of the pairwise ranking loss (0: MSE only)."),
    label_transform: str = typer.Option("quantile", "--label-transform", help="quantile or standard."),
    max_length: int = typer.Option(256, "--max-length", help="Encoder tokens per text."),
    layer: int | None = typer.Option(None, "--layer", help="Encoder hidden state to pool (default 3, block 3 of 6; "
                                     "-1: last = sentence-transformers)."),
    early_stopping: str | None = typer.Option(None, "--early-stopping",
                                              help="Validation metric that picks each head's best epoch: mse "
                                                   "(default) or spearman."),
    precision: str = typer.Option("float32", "--precision", help="Embedding precision: float32, bfloat16 or int8."),
    floor: float = typer.Option(0.5, "--floor", help="Minimum held-out Spearman to become champion."),
    encoder: Path | None = typer.Option(None, "--encoder",
                                        help="A Hugging Face encoder folder (default: the packaged MiniLM)."),
    encoder_kind: str = typer.Option(
        "transformer", "--encoder-kind",
        help="transformer (the encoder itself), static (a word-piece table distilled from it once: ~50x faster "
             "scoring, 0.035 lower held-out Spearman on the demo; docs/scoring.md) or hashed (word-piece n-grams)."),
    encoder_dim: int | None = typer.Option(None, "--encoder-dim",
                                           help="Vector size of a static (default 256) or hashed (1024) encoder."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (default MKT_DEVICE)."),
    as_json: bool = JsonOpt,
) -> None:
    """Train ALinFiK on a label set, register it in MLflow, promote it if it beats the champion
    (runs the Prefect flow `train`)."""
    from pydantic import ValidationError as PydanticValidationError

    from marketplace.approx.config import ApproxConfig

    overrides: dict[str, Any] = {
        "mode": mode, "seed": settings().seed if seed is None else seed, "n_heads": heads, "hidden_dim": hidden,
        "lr": lr, "rank_weight": rank_weight, "label_transform": label_transform,
        "embed": {"max_length": max_length, "precision": precision, "encoder": encoder_kind, "dim": encoder_dim},
    }
    if layer is not None:  # otherwise the EmbedConfig default
        overrides["embed"]["layer"] = layer
    if head is not None:  # otherwise the mode's default (ridge frozen, mlp finetune)
        overrides["head"] = head
    if features is not None:  # otherwise the encoder's and mode's default
        overrides["embed"]["features"] = features
    if early_stopping is not None:
        overrides["early_stopping"] = early_stopping
    if mode == "finetune":
        overrides.update({"max_epochs": 4, "patience": 2, "batch_size": 16})
    if epochs is not None:
        overrides["max_epochs"] = epochs
    if patience is not None:
        overrides["patience"] = patience
    try:
        config = ApproxConfig.model_validate(overrides)
    except PydanticValidationError as exc:
        raise option_error(exc, "training") from exc
    if encoder is not None and not (encoder / "config.json").is_file():
        raise ConfigError(f"--encoder {encoder} is not a Hugging Face model folder (no config.json)")
    if not -1.0 <= floor <= 1.0:
        raise ConfigError(f"--floor {floor} must be a Spearman correlation in [-1, 1]")
    dev = resolve_device(device)

    from flows.train import train as train_flow

    summary = run_flow(train_flow, f"training ALinFiK ({config.mode}) for campaign {campaign} on {dev}",
                       campaign=campaign, label_set_id=label_set, config=config.model_dump(mode="json"),
                       floor=floor, device=dev, encoder_path=str(encoder) if encoder else None)
    emit(summary, as_json, _render)


def register(app: typer.Typer) -> None:
    app.command("train")(handle_errors(train))
