"""``marketplace demo``: the whole pipeline on real data, through the Prefect flows, on embedded defaults.

build or reuse the demo target model → build or reuse the provider corpora → create the campaign →
the ``revalue`` flow (ingest every provider → label → train and register → score → price) → the
``report`` flow (statements, buyer report) → verify the ledger → a summary table.

Everything is reused on a second run: the model and the corpora are cached by their inputs (a model
folder is named by them and never overwritten; an existing campaign keeps the model it was created
with), re-ingesting the same bytes returns the existing submissions, labeling and training are skipped
when the pool did not change, scoring is incremental and pricing is idempotent.

Each size runs in its own store (marketplace.demo.demo_settings): ``--small`` in ``MKT_HOME/demo-small``,
so the two demos' providers never share a pool. What the user sees while it runs is
:mod:`marketplace.cli.demo_progress`; the closing summary names the label count, the approximator's
held-out Spearman against its baselines, the gate's decision and the audit.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import typer

from marketplace import runtime
from marketplace.cli.common import (
    JsonOpt,
    emit,
    err_console,
    handle_errors,
    open_db,
    settings,
    stdout_console,
    venv_command,
)
from marketplace.cli.demo_progress import DemoProgress
from marketplace.cli.outcomes import audit_outcome, gate_outcome, heldout_outcome
from marketplace.names import rich_safe
from marketplace.runtime import ingest_limits
from marketplace.settings import Settings, redact_url

__all__ = ["register"]


def _use_store(store: Settings) -> None:
    """Run the rest of this process (the flows and their tasks read the settings from the environment)
    on ``store``'s home and model cache."""
    os.environ["MKT_HOME"] = str(store.home)
    os.environ["MKT_MODELS_DIR"] = str(store.resolved_models_dir)
    runtime.reset()


def where_to_look(cfg: Settings, base: Settings, reports_dir: Path, log_file: Path) -> dict[str, str]:
    """Where the demo's results are, with commands that run as printed (full paths to this installation's
    scripts, so nothing needs to be on PATH or activated)."""
    prefect_home = os.environ.get("PREFECT_HOME")
    api = os.environ.get("PREFECT_API_URL")
    uri = redact_url(cfg.resolved_mlflow_tracking_uri) or ""
    mlflow_ui = f"{venv_command('mlflow')} ui --backend-store-uri {uri} --port 5000"
    if uri.startswith("sqlite:"):
        mlflow_ui += f" --default-artifact-root {cfg.resolved_mlflow_artifact_root}"
    return {
        "home": f"{base.home} ({base.home_origin})",
        "store": str(cfg.home),
        "reports": str(reports_dir),
        "log": str(log_file),
        "mlflow": uri,
        "mlflow_ui": mlflow_ui + "  # then open http://127.0.0.1:5000",
        "prefect_ui": (f"the UI of the Prefect server at {api}" if api else
                       f"PREFECT_HOME={prefect_home} {venv_command('prefect')} server start  "
                       "# then open http://127.0.0.1:4200"),
        "statements": f"MKT_HOME={cfg.home} {venv_command('marketplace')} report provider NAME",
    }


@handle_errors
def demo(
    small: bool = typer.Option(False, "--small",
                                help="A smaller run (about 5 minutes on 2 cores, the model build included)."),
    period: str | None = typer.Option(None, "--period", help="Pricing period; default: the current UTC month."),
    seed: int = typer.Option(0, "--seed", help="Seed of the corpus, the model and the samplers."),
    as_json: bool = JsonOpt,
) -> None:
    """Run the end-to-end demo on real data and print who gets paid what, and why.

    Each stage is printed as it starts, with a progress bar and an estimate for the long ones; every
    detail goes to a log file in the home."""
    from marketplace.campaigns import create_campaign, get_campaign
    from marketplace.corpus import build_corpus
    from marketplace.demo import DEMO_SIZES, demo_settings, require_own_pool, summarise_providers, summarise_valuation
    from marketplace.errors import ManifestMismatchError, NotFoundError
    from marketplace.inbox import list_provider_folders
    from marketplace.ingest import FieldMapping, read_normalised_records
    from marketplace.ledger import verify_ledger
    from marketplace.money import parse_amount
    from marketplace.revaluation import current_period
    from marketplace.valuation import digest_model_dir
    from marketplace.valuation.demo_model import DemoModelConfig, build_keyed_demo_model

    size = DEMO_SIZES["small" if small else "default"]
    base = settings()
    cfg = demo_settings(base, size)
    if cfg is not base:
        _use_store(cfg)
    cfg.ensure_home()
    period = period or current_period()
    root = cfg.home / "demo" / size.name
    started = time.perf_counter()
    # Prefect configures logging when it is imported: import the flows before the display takes over.
    from flows.report import report as report_flow
    from flows.revalue import revalue as revalue_flow

    out = err_console if as_json else stdout_console()
    out.print(f"home: {base.home} ({base.home_origin})"
              + (f"; the {size.name} demo runs in {cfg.home}" if cfg is not base else ""), highlight=False)
    log_file = cfg.home / "logs" / f"demo-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.log"
    out.print(f"every detail goes to {log_file}", highlight=False)

    _, factory = open_db()
    with factory() as session:
        require_own_pool(session, size)
        try:
            existing = get_campaign(session, size.campaign)
            pinned: tuple[str, str] | None = (existing.target_model_path, existing.target_model_digest)
        except NotFoundError:
            pinned = None

    with DemoProgress(out, log_file) as shown:
        model_text: dict[str, Any]
        if pinned is not None:  # the campaign keeps the model it was created with
            model_path, model_digest = pinned
            shown.begin("model", f"the model campaign {size.campaign} was created with")
            found = digest_model_dir(Path(model_path))
            if found != model_digest:
                raise ManifestMismatchError(
                    f"the target model of campaign {size.campaign} in {model_path} changed (digest {found[:12]}, "
                    f"campaign pinned {model_digest[:12]}); it cannot be repaired in place: restore that folder, "
                    "or run the demo with a new MKT_HOME")
            model_text = {"model": model_path, "digest": model_digest, "built": "earlier (the campaign's model)"}
            shown.finish(model_path)
        else:
            shown.begin("model", f"a small GPT-2 trained {size.model_train_steps} steps on offline text: built "
                        "once, then reused; the longest stage of a first run")
            model = build_keyed_demo_model(cfg.resolved_models_dir,
                                           DemoModelConfig(train_steps=size.model_train_steps), seed=seed)
            model_path, model_digest = model.path, digest_model_dir(Path(model.path))
            model_text = {"model": model_path, "digest": model_digest, "built": "reused" if model.cached else "now",
                          "text_digest": model.text_digest,
                          "text_sources": [t["name"] for t in model.text_sources if t["available"]],
                          "missing_packages": model.missing_packages}
            shown.finish(f"{'reused' if model.cached else 'built'} {model_path}"
                         + (f" (apt-get install {' '.join(model.missing_packages)} adds more training text)"
                            if model.missing_packages else ""))

        corpus_dir = root / "corpus"
        shown.begin("corpora", f"the providers' files, from offline text, in {corpus_dir}")
        manifest = build_corpus(corpus_dir, seed=seed, small=size.corpus_small)
        shown.expected["ingest"] = len(list_provider_folders(corpus_dir))
        missing = manifest.missing_packages()
        shown.finish(f"{shown.expected['ingest']} providers, {manifest.total_records} records, corpus digest "
                     f"{manifest.content_digest()[:12]}"
                     + (f" (sources missing on this machine: apt-get install {' '.join(missing)} adds them)"
                        if missing else ""))

        target_path = corpus_dir / "target" / "target.jsonl"
        shown.begin("campaign", size.campaign)
        with factory() as session, session.begin():
            try:
                campaign = get_campaign(session, size.campaign)
            except NotFoundError:
                records = read_normalised_records(target_path, mapping=FieldMapping(), limits=ingest_limits(cfg))
                campaign = create_campaign(
                    session, name=size.campaign, target_model_path=model_path,
                    target_model_digest=model_digest, target_data_path=str(target_path),
                    target_records=records, budget=parse_amount(size.budget, size.currency),
                    audit_threshold=size.audit_threshold,
                )
            campaign_name = campaign.name
        shown.finish(f"budget {parse_amount(size.budget, size.currency)} per period")

        summary = revalue_flow(campaign_name, period=period, inbox=str(corpus_dir), n_labels=size.n_labels,
                               label_config=dict(size.label_config), promotion_floor=size.promotion_floor,
                               audit_n=size.audit_n)
        reports_dir = cfg.home / "reports" / campaign_name
        report = report_flow(campaign_name, str(reports_dir), period)
        shown.begin("ledger")
        with factory() as session:
            verify = verify_ledger(session)
            rows = summarise_providers(session, campaign_name, period)
            valuation = summarise_valuation(session, campaign_name, period)
        shown.finish("ok" if verify.ok else "FAILED")

    result: dict[str, Any] = {
        "campaign": campaign_name,
        "period": period,
        "size": size.name,
        "seconds": round(time.perf_counter() - started, 1),
        "timings": shown.timings,
        "providers": rows,
        "ledger_ok": verify.ok,
        "valuation": {
            "n_labels": valuation.n_labels,
            "heldout_spearman": valuation.heldout,
            "gate": gate_outcome(summary.get("train")),
            "champion_decision": valuation.gate_decision,
            "audit": valuation.audit,
        },
        "plan": summary["plan"],
        "label": summary.get("label"),
        "train": summary.get("train"),
        "score": summary["score"],
        "price": summary["price"],
        "reports": report,
        "target_model": model_text,
        "corpus": {"path": str(corpus_dir), "digest": manifest.content_digest(), "records": manifest.total_records,
                   "missing_packages": manifest.missing_packages()},
        "where": where_to_look(cfg, base, reports_dir, log_file),
    }

    def render(d: dict[str, Any]) -> None:
        from rich.table import Table

        out = stdout_console()
        table = Table(title=f"{d['campaign']} · period {d['period']} · {d['seconds']:.0f} s")
        for col in ("provider", "samples", "duplicates", "quarantined", "value share", "fine-tuning check",
                    "payout"):
            table.add_column(col, justify="left" if col == "provider" else "right", no_wrap=True)
        for r in d["providers"]:
            table.add_row(rich_safe(r.provider), str(r.samples), str(r.duplicates), str(r.quarantined),
                          f"{100 * r.value_share:.1f}%", r.check or "-", r.payout)
        out.print(table)
        v = d["valuation"]
        lines = {
            "labels": f"{v['n_labels']} exact LinFiK labels taught the approximator",
            "held-out": f"Spearman with labels it never saw: {heldout_outcome(v['heldout_spearman'])}",
            "gate": v["gate"],
            "audit": audit_outcome(v["audit"]),
            "ledger": "verified" if d["ledger_ok"] else "VERIFY FAILED",
        }
        for key, value in {**lines, **d["where"]}.items():
            out.print(f"{key:>10}: {value}", highlight=False, soft_wrap=True)

    emit(result, as_json, render)
    if not verify.ok:
        raise typer.Exit(code=7)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
