"""The ``marketplace`` console script.

Commands live in one module per area (``marketplace/cli/*_cmd.py``), each exposing ``register(app)``.
Every command has ``--help``; every command that reports something has ``--json``.
"""

from __future__ import annotations

import importlib
import logging

import typer

from marketplace.cli.common import (
    JsonOpt,
    apply_offline_env,
    emit,
    handle_errors,
    open_db,
    print_table,
    settings,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="marketplace",
    help="Value LLM training data with LinFiK/ALinFiK, pay providers through a double-entry ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")

# Areas register their commands here; a module that is not there yet is simply skipped so that the
# CLI works at every stage of the build-out.
COMMAND_MODULES = (
    "marketplace.cli.ingest_cmd",
    "marketplace.cli.corpus_cmd",
    "marketplace.cli.campaign_cmd",
    "marketplace.cli.valuation_cmd",
    "marketplace.cli.approx_cmd",
    "marketplace.cli.ledger_cmd",
    "marketplace.cli.report_cmd",
    "marketplace.cli.ops_cmd",
    "marketplace.cli.demo_cmd",
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    apply_offline_env()
    level = logging.DEBUG if verbose else getattr(logging, settings().log_level.upper(), logging.INFO)
    # Our own progress at INFO; third-party chatter (alembic, mlflow, httpx...) only when verbose.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("marketplace", "flows", "tasks"):
        logging.getLogger(name).setLevel(level)


@db_app.command("upgrade")
@handle_errors
def db_upgrade(revision: str = typer.Argument("head", help="Target revision."), as_json: bool = JsonOpt) -> None:
    """Create or migrate the schema to REVISION (default: the latest)."""
    from marketplace.db.migrate import current_revision, upgrade

    engine, _ = open_db(upgrade=False)
    upgrade(engine, revision)
    emit({"database": engine.url.render_as_string(hide_password=True), "revision": current_revision(engine)},
         as_json, lambda d: typer.echo(f"{d['database']} at revision {d['revision']}"))


@db_app.command("downgrade")
@handle_errors
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, or 'base'.")) -> None:
    """Migrate the schema down to REVISION."""
    from marketplace.db.migrate import current_revision, downgrade

    engine, _ = open_db(upgrade=False)
    downgrade(engine, revision)
    typer.echo(f"at revision {current_revision(engine)}")


@app.command("status")
@handle_errors
def status(as_json: bool = JsonOpt) -> None:
    """What is in the store: providers, submissions, samples, quarantine, duplicates, campaigns, ledger."""
    from marketplace.status import collect_status

    _, factory = open_db()
    with factory() as session:
        data = collect_status(session)
    cfg = settings()
    data["store"] = {
        "home": str(cfg.home),
        "database": cfg.resolved_database_url,
        "mlflow": cfg.resolved_mlflow_tracking_uri,
    }

    def render(d: dict[str, dict[str, object]]) -> None:
        for section, values in d.items():
            print_table(section, ["what", "value"], values.items())

    emit(data, as_json, render)


for _module in COMMAND_MODULES:
    try:
        importlib.import_module(_module).register(app)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise


def main() -> None:
    app()
