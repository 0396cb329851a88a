"""The ``marketplace`` console script.

Commands live in one module per command group (``marketplace/cli/<group>_cmd.py``), each exposing
``register(app)``. Every command has ``--help``; every command that reports something has ``--json``.
"""

from __future__ import annotations

import importlib
import logging

import typer

from marketplace.cli.common import settings
from marketplace.cli.noise import quiet_known_noise
from marketplace.names import LOG_FORMAT, InertLogFormatter
from marketplace.runtime import apply_offline_env, use_prefect_home

__all__ = ["COMMAND_MODULES", "app", "main"]

app = typer.Typer(
    name="marketplace",
    help="Value LLM training data with LinFiK/ALinFiK, pay providers through a double-entry ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# In the order the pipeline runs them; each module registers its command (group) on the app.
COMMAND_MODULES = (
    "marketplace.cli.db_cmd",
    "marketplace.cli.status_cmd",
    "marketplace.cli.ingest_cmd",
    "marketplace.cli.submissions_cmd",
    "marketplace.cli.corpus_cmd",
    "marketplace.cli.campaign_cmd",
    "marketplace.cli.model_cmd",
    "marketplace.cli.label_cmd",
    "marketplace.cli.labels_cmd",
    "marketplace.cli.train_cmd",
    "marketplace.cli.score_cmd",
    "marketplace.cli.scores_cmd",
    "marketplace.cli.select_cmd",
    "marketplace.cli.active_label_cmd",
    "marketplace.cli.registry_cmd",
    "marketplace.cli.price_cmd",
    "marketplace.cli.ledger_cmd",
    "marketplace.cli.report_cmd",
    "marketplace.cli.validate_cmd",
    "marketplace.cli.revalue_cmd",
    "marketplace.cli.serve_cmd",
    "marketplace.cli.principals_cmd",
    "marketplace.cli.api_cmd",
    "marketplace.cli.demo_cmd",
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    apply_offline_env()
    # Before any command imports Prefect: every command records its runs in one place.
    use_prefect_home(settings())
    level = logging.DEBUG if verbose else getattr(logging, settings().log_level.upper(), logging.INFO)
    # Our own progress at INFO; third-party chatter (alembic, mlflow, httpx...) only when verbose.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format=LOG_FORMAT)
    for handler in logging.getLogger().handlers:  # user text in a message never forges a line
        handler.setFormatter(InertLogFormatter(LOG_FORMAT))
    for name in ("marketplace", "flows", "tasks"):
        logging.getLogger(name).setLevel(level)
    quiet_known_noise(verbose)


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    app()
