"""``marketplace demo``: the whole pipeline on real data, through the Prefect flows, on embedded defaults.

build or reuse the demo target model → build or reuse the provider corpora → create the campaign →
the ``revalue`` flow (ingest every provider → label → train and register → score → price) → the
``report`` flow (statements, buyer report) → verify the ledger → a summary table.

Everything is reused on a second run: the model and the corpora are cached by their inputs (a model
folder is named by them and never overwritten; an existing campaign keeps the model it was created
with), re-ingesting the same bytes returns the existing submissions, labeling and training are skipped
when the pool did not change, scoring is incremental and pricing is idempotent.

Each size runs in its own store (marketplace.demo.demo_settings): ``--small`` in ``MKT_HOME/demo-small``,
so the two demos' providers never share a pool.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import typer

from marketplace import runtime
from marketplace.cli.common import JsonOpt, console, emit, handle_errors, open_db, settings
from marketplace.runtime import ingest_limits
from marketplace.settings import Settings, redact_url

__all__ = ["register"]


def _keep_prefect_runs(home: Path) -> Path | None:
    """Without a Prefect server (PREFECT_API_URL), the flows run against a temporary one whose database
    lives in PREFECT_HOME: put it under MKT_HOME (unless set) so `prefect server start` shows the runs.

    The demo runs on embedded defaults, so a profile in ~/.prefect is then not read: a server must be
    named by the PREFECT_API_URL environment variable.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    return Path(os.environ["PREFECT_HOME"])


def _use_store(store: Settings) -> None:
    """Run the rest of this process (the flows and their tasks read the settings from the environment)
    on ``store``'s home and model cache."""
    os.environ["MKT_HOME"] = str(store.home)
    os.environ["MKT_MODELS_DIR"] = str(store.resolved_models_dir)
    runtime.reset()


def _stage(name: str, t0: float, timings: dict[str, float], as_json: bool) -> float:
    now = time.perf_counter()
    timings[name] = round(now - t0, 1)
    if not as_json:
        console.print(f"[green]✓[/] {name} ({timings[name]:.1f} s)", highlight=False)
    return now


@handle_errors
def demo(
    small: bool = typer.Option(False, "--small", help="A smaller run (~5 minutes on 2 cores)."),
    period: str | None = typer.Option(None, "--period", help="Pricing period; default: the current UTC month."),
    seed: int = typer.Option(0, "--seed", help="Seed of the corpus, the model and the samplers."),
    as_json: bool = JsonOpt,
) -> None:
    """Run the end-to-end demo on real data and print who gets paid what, and why."""
    from marketplace.campaigns import create_campaign, get_campaign
    from marketplace.corpus import build_corpus
    from marketplace.demo import DEMO_SIZES, demo_settings, require_own_pool, summarise_providers
    from marketplace.errors import ManifestMismatchError, NotFoundError
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
    prefect_home = _keep_prefect_runs(cfg.home)
    period = period or current_period()
    root = cfg.home / "demo" / size.name
    timings: dict[str, float] = {}
    started = t0 = time.perf_counter()
    if not as_json:
        console.print(f"home: {base.home} ({base.home_origin})"
                      + (f"; the {size.name} demo runs in {cfg.home}" if cfg is not base else ""), highlight=False)

    _, factory = open_db()
    with factory() as session:
        require_own_pool(session, size)
        try:
            existing = get_campaign(session, size.campaign)
            pinned: tuple[str, str] | None = (existing.target_model_path, existing.target_model_digest)
        except NotFoundError:
            pinned = None

    model_text: dict[str, Any]
    if pinned is not None:  # the campaign keeps the model it was created with
        model_path, model_digest = pinned
        found = digest_model_dir(Path(model_path))
        if found != model_digest:
            raise ManifestMismatchError(
                f"the target model of campaign {size.campaign} in {model_path} changed (digest {found[:12]}, "
                f"campaign pinned {model_digest[:12]}); it cannot be repaired in place: restore that folder, or "
                "run the demo with a new MKT_HOME")
        model_text = {"model": model_path, "digest": model_digest, "built": "earlier (the campaign's model)"}
        t0 = _stage(f"target model of campaign {size.campaign}: {model_path}", t0, timings, as_json)
    else:
        model = build_keyed_demo_model(cfg.resolved_models_dir, DemoModelConfig(train_steps=size.model_train_steps),
                                       seed=seed)
        model_path, model_digest = model.path, digest_model_dir(Path(model.path))
        model_text = {"model": model_path, "digest": model_digest, "built": "reused" if model.cached else "now",
                      "text_digest": model.text_digest,
                      "text_sources": [t["name"] for t in model.text_sources if t["available"]],
                      "missing_packages": model.missing_packages}
        t0 = _stage(f"target model {'reused' if model.cached else 'built'}: {model_path} (training text "
                    f"{model.text_digest[:12]} from {', '.join(model_text['text_sources'])}"
                    + (f"; apt-get install {' '.join(model.missing_packages)} adds more" if model.missing_packages
                       else "") + ")", t0, timings, as_json)

    corpus_dir = root / "corpus"
    manifest = build_corpus(corpus_dir, seed=seed, small=size.corpus_small)
    t0 = _stage(f"provider corpora in {corpus_dir} ({manifest.total_records} records)", t0, timings, as_json)

    target_path = corpus_dir / "target" / "target.jsonl"
    with factory() as session, session.begin():
        try:
            campaign = get_campaign(session, size.campaign)
        except NotFoundError:
            records = read_normalised_records(target_path, mapping=FieldMapping(),
                                              limits=ingest_limits(cfg))
            campaign = create_campaign(
                session, name=size.campaign, target_model_path=model_path,
                target_model_digest=model_digest, target_data_path=str(target_path),
                target_records=records, budget=parse_amount(size.budget, size.currency),
                audit_threshold=size.audit_threshold,
            )
        campaign_name = campaign.name
    t0 = _stage(f"campaign {campaign_name}", t0, timings, as_json)

    from flows.report import report as report_flow
    from flows.revalue import revalue as revalue_flow

    summary = revalue_flow(campaign_name, period=period, inbox=str(corpus_dir), n_labels=size.n_labels,
                          label_config=dict(size.label_config), promotion_floor=size.promotion_floor,
                          audit_n=size.audit_n)
    t0 = _stage("revalue flow: ingest → label → train → score → price", t0, timings, as_json)
    reports_dir = cfg.home / "reports" / campaign_name
    report = report_flow(campaign_name, str(reports_dir), period)
    t0 = _stage(f"reports in {reports_dir}", t0, timings, as_json)

    with factory() as session:
        verify = verify_ledger(session)
        rows = summarise_providers(session, campaign_name, period)
    _stage("ledger verified" if verify.ok else "LEDGER VERIFY FAILED", t0, timings, as_json)

    result: dict[str, Any] = {
        "campaign": campaign_name,
        "period": period,
        "size": size.name,
        "seconds": round(time.perf_counter() - started, 1),
        "timings": timings,
        "providers": rows,
        "ledger_ok": verify.ok,
        "plan": summary["plan"],
        "label": summary.get("label"),
        "train": summary.get("train"),
        "score": summary["score"],
        "price": summary["price"],
        "reports": report,
        "target_model": model_text,
        "where": {
            "home": f"{base.home} ({base.home_origin})",
            "store": str(cfg.home),
            "reports": str(reports_dir),
            "mlflow": redact_url(cfg.resolved_mlflow_tracking_uri),
            "mlflow_ui": f"mlflow ui --backend-store-uri {redact_url(cfg.resolved_mlflow_tracking_uri)} --port 5000",
            "prefect_ui": (f"PREFECT_HOME={prefect_home} prefect server start  # then open http://127.0.0.1:4200"
                           if prefect_home else f"the UI of the Prefect server at {os.environ['PREFECT_API_URL']}"),
        },
    }

    def render(d: dict[str, Any]) -> None:
        from rich.console import Console
        from rich.table import Table

        # Not a terminal (a log, a pipe): rich would squeeze everything into 80 columns and cut the names.
        out = console if console.is_terminal else Console(width=max(console.width, 120))

        table = Table(title=f"{d['campaign']} · period {d['period']} · {d['seconds']:.0f} s")
        for col in ("provider", "samples", "duplicates", "quarantined", "value share", "payout"):
            table.add_column(col, justify="left" if col == "provider" else "right", no_wrap=True)
        for r in d["providers"]:
            table.add_row(r.provider, str(r.samples), str(r.duplicates), str(r.quarantined),
                          f"{100 * r.value_share:.1f}%", r.payout)
        out.print(table)
        out.print(f"ledger verify: {'ok' if d['ledger_ok'] else 'FAILED'}")
        for key, value in d["where"].items():
            out.print(f"{key:>10}: {value}", highlight=False)

    emit(result, as_json, render)
    if not verify.ok:
        raise typer.Exit(code=7)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
