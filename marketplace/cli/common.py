"""Shared CLI plumbing: settings, database access, ``--json`` output and error handling.

The CLI is an *edge*: it reads the environment once (:class:`~marketplace.settings.Settings`), opens
the database, calls core functions or runs Prefect flows, and prints. It is the only part of the
``marketplace`` package allowed to import Prefect (lazily, inside commands that run flows).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from marketplace.errors import MarketplaceError
from marketplace.settings import Settings, get_settings

__all__ = [
    "JsonOpt",
    "console",
    "emit",
    "err_console",
    "handle_errors",
    "open_db",
    "print_table",
    "settings",
]

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="Print a machine-readable JSON document instead of tables.")

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # MLflow prints "View run ... at: URL" to stdout with an HTTP tracking server; --json needs stdout clean.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # The temporary Prefect server migrates a fresh database before it answers; Prefect waits 20 s by
    # default, which a busy 2-core machine exceeded once (a fresh `marketplace demo --small` failed).
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def apply_offline_env() -> None:
    """Nothing is ever downloaded from a hub: pin the offline switches unless the user set them."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


@functools.lru_cache(maxsize=1)
def settings() -> Settings:
    return get_settings()


_engines: dict[str, Engine] = {}


def open_db(upgrade: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory for the configured database; brings the schema up to date first.

    Embedded use should just work, so the schema is upgraded on first use (a no-op when current).
    """
    from marketplace.db import create_db_engine, make_session_factory
    from marketplace.db.migrate import upgrade as upgrade_schema

    cfg = settings()
    cfg.ensure_home()
    url = cfg.resolved_database_url
    if url not in _engines:
        engine = create_db_engine(url)
        if upgrade:
            upgrade_schema(engine)
        _engines[url] = engine
    engine = _engines[url]
    return engine, make_session_factory(engine)


def _to_jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return {k: _to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "__fspath__"):
        return os.fspath(value)
    return value


def emit(data: Any, as_json: bool, render: Callable[[Any], None] | None = None) -> None:
    """Print ``data`` as JSON (``--json``) or through ``render`` (human tables)."""
    if as_json:
        sys.stdout.write(json.dumps(_to_jsonable(data), indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()
    elif render is not None:
        render(data)
    else:
        console.print_json(json.dumps(_to_jsonable(data), default=str))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn :class:`MarketplaceError` into a one-line message on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MarketplaceError as exc:
            from rich.markup import escape

            # Escape: messages carry "[reason_code]" prefixes that rich would eat as markup.
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            logging.getLogger(__name__).debug("command failed", exc_info=True)
            raise typer.Exit(code=exc.exit_code) from exc

    return wrapper
