"""``marketplace train|score|select|active-label``, ``marketplace scores export`` and
``marketplace registry list|show|history|promote`` (ALinFiK, issue 4).

``train`` and ``score`` run the Prefect flows of the same names (imported inside the commands, so
``--help`` stays fast); the others call the core directly. Progress goes to stderr (logging), the
``--json`` document alone to stdout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, err_console, handle_errors, open_db, print_table, settings
from marketplace.errors import ConfigError

__all__ = ["register"]

log = logging.getLogger(__name__)

scores_app = typer.Typer(help="Scores of approximator versions: export.", no_args_is_help=True)
registry_app = typer.Typer(help="ALinFiK model registry (MLflow): versions, lineage, aliases, history.",
                           no_args_is_help=True)


def _progress(message: str) -> None:
    err_console.print(f"[dim]{message}[/]", highlight=False)


def _device(name: str | None) -> str:
    import torch

    name = name or settings().device
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"--device {name!r} is not a torch device; use cpu, cuda, cuda:N or auto") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} asked for CUDA but no GPU is available; use --device cpu")
    return str(dev)


def _task_runner(kind: str | None, workers: int | None) -> Any:
    cfg = settings()
    kind = kind or cfg.task_runner
    n = workers or cfg.max_workers
    if kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=n)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.dask_address:
            return DaskTaskRunner(address=cfg.dask_address)
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})
    raise ConfigError(f"--task-runner {kind!r}: use thread or dask")


def _registry() -> Any:
    from tasks.train import make_registry

    return make_registry(settings())


def _campaign(session: Any, ref: str) -> Any:
    from marketplace.campaigns import get_campaign

    return get_campaign(session, ref)


# --- train ------------------------------------------------------------------------------------------


def train(
    campaign: str = typer.Argument(..., help="Campaign id or name."),
    label_set: int | None = typer.Option(None, "--label-set", help="Label set id (default: the latest complete)."),
    mode: str = typer.Option("frozen", "--mode", help="frozen (MiniLM embeddings + MLP heads) or finetune."),
    seed: int | None = typer.Option(None, "--seed", help="Training seed (default MKT_SEED)."),
    heads: int = typer.Option(5, "--heads", help="Ensemble size (the spread is the uncertainty)."),
    hidden: int = typer.Option(128, "--hidden", help="Hidden units per head."),
    epochs: int | None = typer.Option(None, "--epochs", help="Max epochs (default 200 frozen, 4 finetune)."),
    patience: int | None = typer.Option(None, "--patience", help="Early-stopping patience in epochs."),
    lr: float = typer.Option(1e-3, "--lr", help="Head learning rate (AdamW)."),
    rank_weight: float = typer.Option(0.5, "--rank-weight", help="Weight of the pairwise ranking loss (0: MSE only)."),
    label_transform: str = typer.Option("quantile", "--label-transform", help="quantile or standard."),
    max_length: int = typer.Option(256, "--max-length", help="Encoder tokens per text."),
    layer: int = typer.Option(4, "--layer", help="Encoder hidden state to pool (-1: last = sentence-transformers)."),
    precision: str = typer.Option("float32", "--precision", help="Embedding precision: float32, bfloat16 or int8."),
    floor: float = typer.Option(0.5, "--floor", help="Minimum held-out Spearman to become champion."),
    encoder: Path | None = typer.Option(None, "--encoder",
                                        help="A Hugging Face encoder folder (default: the packaged MiniLM)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (default MKT_DEVICE)."),
    as_json: bool = JsonOpt,
) -> None:
    """Train ALinFiK on a label set, register it in MLflow, promote it if it beats the champion
    (runs the Prefect flow `train`)."""
    from pydantic import ValidationError as PydanticValidationError

    from marketplace.approx.config import ApproxConfig

    cfg = settings()
    overrides: dict[str, Any] = {
        "mode": mode, "seed": cfg.seed if seed is None else seed, "n_heads": heads, "hidden_dim": hidden, "lr": lr,
        "rank_weight": rank_weight, "label_transform": label_transform,
        "embed": {"layer": layer, "max_length": max_length, "precision": precision},
    }
    if mode == "finetune":
        overrides.update({"max_epochs": 4, "patience": 2, "batch_size": 16})
    if epochs is not None:
        overrides["max_epochs"] = epochs
    if patience is not None:
        overrides["patience"] = patience
    try:
        config = ApproxConfig.model_validate(overrides)
    except PydanticValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "value"
        raise ConfigError(f"invalid training option {where}: {err['msg']}") from exc
    if encoder is not None and not (encoder / "config.json").is_file():
        raise ConfigError(f"--encoder {encoder} is not a Hugging Face model folder (no config.json)")
    if not -1.0 <= floor <= 1.0:
        raise ConfigError(f"--floor {floor} must be a Spearman correlation in [-1, 1]")
    dev = _device(device)
    open_db()

    from flows.train import train as train_flow

    _progress(f"training ALinFiK ({config.mode}) for campaign {campaign} on {dev}")
    summary = train_flow(campaign=campaign, label_set_id=label_set, config=config.model_dump(mode="json"),
                         floor=floor, device=dev, encoder_path=str(encoder) if encoder else None)

    def render(d: dict[str, Any]) -> None:
        m = d["metrics"]
        print_table(f"{d['model_name']} v{d['version']}", [f"held-out (n={int(m.get('approx_n', 0))})",
                                                           "spearman", "pearson", "kendall", "precision@10%"], [
            (who, *(f"{m.get(f'{p}{k}', float('nan')):.3f}" for k in ("spearman", "pearson", "kendall",
                                                                        "precision_at_10")))
            for who, p in (("ALinFiK", "approx_"), ("TF-IDF + ridge", "tfidf_ridge_"),
                           ("target cosine", "target_cosine_"))
        ])
        typer.echo(f"{'PROMOTED to champion' if d['promoted'] else 'kept as candidate'}: {d['reason']}")

    emit(summary, as_json, render)


# --- score ------------------------------------------------------------------------------------------


def score(
    campaign: str = typer.Argument(..., help="Campaign id or name."),
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
    dev = _device(device)
    open_db()

    from flows.score import score as score_flow

    flow = score_flow.with_options(task_runner=_task_runner(task_runner, workers))
    _progress(f"scoring campaign {campaign} with {version or '@champion'} on {dev}")
    summary = flow(campaign=campaign, version=version, shard_size=shard_size, first_owners_only=first_owners_only,
                   audit_n=audit_n, audit_seed=settings().seed if audit_seed is None else audit_seed,
                   audit_labeler=audit_labeler, device=dev)

    def render(d: dict[str, Any]) -> None:
        audit = d["audit"]
        rows = [("score run", d["score_run_id"]), ("model", f"{d['model_name']} v{d['version']}"),
                ("resolved from", d["resolved_from"]), ("to score", d["n_todo"]), ("scored", d["n_scored"]),
                ("embedded (cache misses)", d["n_embedded"]), ("shards", d["n_shards"]),
                ("audit", audit["reason"])]
        print_table("score run", ["field", "value"], rows)

    emit(summary, as_json, render)


# --- exports ----------------------------------------------------------------------------------------


@scores_app.command("export")
@handle_errors
def scores_export(
    campaign: str = typer.Argument(..., help="Campaign id or name."),
    out: Path = typer.Argument(..., help="Output file: .jsonl, .csv or .parquet."),
    version: str | None = typer.Option(None, "--version", help="Model version (default: latest complete score run)."),
    as_json: bool = JsonOpt,
) -> None:
    """Write every scored sample (sample id, provider, text, score, spread, model version) to OUT."""
    from marketplace.approx.export import export_scores

    _, factory = open_db()
    with factory() as session, session.begin():
        result = export_scores(session, _campaign(session, campaign).id, out, version=version)
    emit(result, as_json, lambda r: typer.echo(
        f"wrote {r.n_rows} scores of {r.model_name} v{r.model_version} to {r.path} ({r.format})"))


def select(
    campaign: str = typer.Argument(..., help="Campaign id or name."),
    out: Path = typer.Argument(..., help="Training-set file: .jsonl, .csv or .parquet."),
    top: float = typer.Option(..., "--top", help="Fraction of unique samples to keep, e.g. 0.1 for the top 10%."),
    version: str | None = typer.Option(None, "--version", help="Model version (default: latest complete score run)."),
    as_json: bool = JsonOpt,
) -> None:
    """Write the highest-valued unique (first-owner) samples as a training set."""
    from marketplace.approx.export import select_top

    _, factory = open_db()
    with factory() as session, session.begin():
        result = select_top(session, _campaign(session, campaign).id, top, out, version=version)
    emit(result, as_json, lambda r: typer.echo(
        f"wrote the top {r.n_rows} unique samples by {r.model_name} v{r.model_version} to {r.path} ({r.format})"))


def active_label(
    campaign: str = typer.Argument(..., help="Campaign id or name."),
    n: int = typer.Option(..., "--n", help="How many samples to propose for exact labeling."),
    out: Path | None = typer.Option(None, "--out", help="Also write the ids (one per line, or .csv/.jsonl)."),
    version: str | None = typer.Option(None, "--version", help="Model version (default: latest complete score run)."),
    as_json: bool = JsonOpt,
) -> None:
    """Unlabeled samples where the ensemble heads disagree most: the best next ones to label exactly."""
    import dataclasses

    from marketplace.approx.active import rank_for_labeling

    _, factory = open_db()
    with factory() as session, session.begin():
        model, candidates = rank_for_labeling(session, _campaign(session, campaign).id, n, version=version)
    rows = [dataclasses.asdict(c) for c in candidates]
    if out is not None:
        _write_ids(out, rows)
    data = {"model": model, "n": len(rows), "candidates": rows, "out": str(out) if out else None}
    emit(data, as_json, lambda d: print_table(
        f"next samples to label ({d['model']})", ["sample_id", "provider", "score", "spread"],
        [(r["sample_id"], r["provider"], f"{r['score']:.4g}", f"{r['spread']:.4g}") for r in d["candidates"]]))


def _write_ids(out: Path, rows: list[dict[str, Any]]) -> None:
    import pandas as pd

    out.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows, columns=["sample_id", "provider", "score", "spread"])
    if out.suffix == ".csv":
        df.to_csv(out, index=False)
    elif out.suffix == ".jsonl":
        df.to_json(out, orient="records", lines=True)
    else:
        out.write_text("".join(f"{i}\n" for i in df["sample_id"]), encoding="utf-8")


# --- registry ---------------------------------------------------------------------------------------


def _model_name(campaign_name: str) -> str:
    from marketplace.approx.registry import model_name_for

    return model_name_for(campaign_name)


@registry_app.command("list")
@handle_errors
def registry_list(campaign: str = typer.Argument(..., help="Campaign id or name."), as_json: bool = JsonOpt) -> None:
    """Every version of the campaign's model: aliases, held-out metrics, gate decision, usage."""
    from marketplace.approx.history import list_version_summaries

    _, factory = open_db()
    with factory() as session, session.begin():
        camp = _campaign(session, campaign)
        name = _model_name(camp.name)
        versions = list_version_summaries(session, camp.id, name, _registry())
    data = {"model_name": name, "versions": versions}

    def render(d: dict[str, Any]) -> None:
        print_table(d["model_name"], ["version", "aliases", "spearman", "tfidf", "cosine", "score runs",
                                      "pricing runs", "decision"], [
            (v["version"], ",".join(v["aliases"]), _fmt(v["metrics"].get("approx_spearman")),
             _fmt(v["metrics"].get("tfidf_ridge_spearman")), _fmt(v["metrics"].get("target_cosine_spearman")),
             len(v["score_runs"]), len(v["pricing_runs"]), v["decision"] or "")
            for v in d["versions"]
        ])

    emit(data, as_json, render)


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


@registry_app.command("show")
@handle_errors
def registry_show(
    campaign: str = typer.Argument(..., help="Campaign id or name."),
    version: str = typer.Argument(..., help="Model version number."),
    as_json: bool = JsonOpt,
) -> None:
    """One version: all metrics, lineage tags, aliases, events, and the score/pricing runs that used it."""
    from marketplace.approx.history import describe_version

    _, factory = open_db()
    with factory() as session, session.begin():
        camp = _campaign(session, campaign)
        data = describe_version(session, camp.id, _model_name(camp.name), _registry(), version)

    def render(d: dict[str, Any]) -> None:
        print_table(f"version {d['version']}", ["field", "value"], [
            ("aliases", ",".join(d["aliases"])), ("mode", d["mode"]), ("label set", d["label_set_id"]),
            ("decision", d["decision"]), ("mlflow run", d["mlflow_run_id"]), ("source", d.get("source", "")),
        ])
        print_table("metrics (held out)", ["metric", "value"], sorted(d["metrics"].items()))
        print_table("lineage", ["tag", "value"], sorted(d["lineage"].items()))
        print_table("score runs", ["id", "status", "scored", "audit spearman", "audit passed"], [
            (r["score_run_id"], r["status"], r["n_scored"], _fmt(r["audit_spearman"]), r["audit_passed"])
            for r in d["score_runs"]])
        print_table("pricing runs", ["id", "details"], [(r.get("pricing_run_id"), r) for r in d["pricing_runs"]])
        print_table("events", ["at", "action", "alias", "reason"],
                    [(e["at"], e["action"], e["alias"], e["reason"]) for e in d["events"]])

    emit(data, as_json, render)


@registry_app.command("history")
@handle_errors
def registry_history(
    campaign: str = typer.Argument(..., help="Campaign id or name."), as_json: bool = JsonOpt
) -> None:
    """Every registration, promotion, rejection and demotion of the campaign's versions, with reasons."""
    from marketplace.approx.history import version_history

    _, factory = open_db()
    with factory() as session, session.begin():
        events = version_history(session, _campaign(session, campaign).id)
    emit(events, as_json, lambda d: print_table("registry history", ["at", "version", "action", "alias", "reason"],
                                                [(e["at"], e["version"], e["action"], e["alias"], e["reason"])
                                                 for e in d]))


@registry_app.command("promote")
@handle_errors
def registry_promote(
    campaign: str = typer.Argument(..., help="Campaign id or name."),
    version: str = typer.Argument(..., help="Model version to make champion."),
    reason: str = typer.Option(..., "--reason", help="Why (goes on the record)."),
    as_json: bool = JsonOpt,
) -> None:
    """Move the champion alias to VERSION explicitly (an operator's decision, recorded with its reason)."""
    from marketplace.approx.publish import promote_version

    _, factory = open_db()
    with factory() as session, session.begin():
        camp = _campaign(session, campaign)
        row = promote_version(session, _registry(), camp.id, _model_name(camp.name), version, reason)
        data = {"model_name": row.model_name, "version": row.version, "alias": "champion", "reason": reason}
    emit(data, as_json, lambda d: typer.echo(f"{d['model_name']} v{d['version']} is now champion: {d['reason']}"))


def register(app: typer.Typer) -> None:
    app.command("train")(handle_errors(train))
    app.command("score")(handle_errors(score))
    app.command("select")(handle_errors(select))
    app.command("active-label")(handle_errors(active_label))
    app.add_typer(scores_app, name="scores")
    app.add_typer(registry_app, name="registry")
