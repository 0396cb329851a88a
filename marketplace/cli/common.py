"""Shared CLI plumbing: settings and database access (through :mod:`marketplace.runtime`), ``--json``
output, tables, option errors and error handling.

The CLI is an *edge*: it reads the settings once, opens the database, calls core functions or runs
Prefect flows, and prints. It is the only part of the ``marketplace`` package allowed to import
Prefect (lazily, inside commands that run flows); it never imports ``tasks``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from marketplace import runtime
from marketplace.errors import ConfigError, MarketplaceError
from marketplace.settings import Settings

__all__ = [
    "CampaignArg",
    "JsonOpt",
    "ScoredVersionOpt",
    "console",
    "emit",
    "err_console",
    "handle_errors",
    "in_session",
    "money",
    "open_db",
    "option_error",
    "print_fields",
    "print_table",
    "progress",
    "run_flow",
    "settings",
    "stdout_console",
    "venv_command",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

# Width of output that goes to a file or a pipe: wide enough that no table cell is ever cut with "…"
# (rich would otherwise squeeze everything into 80 columns); lines are only as long as their content.
PIPE_WIDTH = 100_000

JsonOpt = typer.Option(False, "--json", help="Print a machine-readable JSON document instead of tables.")
CampaignArg = typer.Argument(..., help="Campaign id or name.")
ScoredVersionOpt = typer.Option(None, "--version", help="Model version (default: latest complete score run).")


def settings() -> Settings:
    """The settings of this process (read from the environment once, see marketplace.runtime)."""
    return runtime.current_settings()


def open_db(upgrade: bool = True, *, create_home: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory for the configured database; brings the schema up to date first
    (embedded use should just work; a no-op when current). ``create_home``: create the home when absent
    (commands that put data in); else a missing store is a ConfigError saying where it looked
    (:func:`marketplace.runtime.require_store`), and nothing is created."""
    from marketplace.db import make_session_factory

    cfg = settings()
    if create_home:
        cfg.ensure_home()
    else:
        runtime.require_store(cfg)
    engine = runtime.engine_for(cfg.resolved_database_url, upgrade=upgrade)
    return engine, make_session_factory(engine)


def in_session(work: Callable[[Session], T], *, write: bool = False, create_home: bool = False) -> T:
    """``work(session)`` on the configured database in a session of its own; ``write``: inside one
    transaction, committed when ``work`` returns (read-only commands leave it False). The store must exist
    unless ``create_home`` (only commands that start one, such as ``campaign create``, pass it)."""
    _, factory = open_db(create_home=create_home)
    with factory() as session:
        if not write:
            return work(session)
        with session.begin():
            return work(session)


def run_flow(flow_obj: Any, message: str, *, task_runner: Any = None, **params: Any) -> Any:
    """Run a Prefect flow from a command: the schema is brought up to date first (the flow's tasks open
    their own sessions), ``message`` goes to stderr, the flow runs on ``task_runner`` when one is given
    (else on its own default)."""
    open_db()
    progress(message)
    if task_runner is not None:
        flow_obj = flow_obj.with_options(task_runner=task_runner)
    return flow_obj(**params)


def progress(message: str) -> None:
    """A progress line on stderr (stdout carries only the ``--json`` document)."""
    err_console.print(f"[dim]{message}[/]", highlight=False)


def option_error(exc: Exception, what: str) -> ConfigError:
    """A ConfigError naming the first invalid option of a pydantic ValidationError (or any ValueError)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        return ConfigError(f"invalid {what} option {where}: {first['msg']}")
    return ConfigError(f"invalid {what} option: {exc}")


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


def stdout_console() -> Console:
    """The console for stdout: the terminal's own; when stdout is a file or a pipe, one so wide that no
    cell is truncated or wrapped (a log or ``| grep`` sees every name and path whole)."""
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def venv_command(name: str) -> str:
    """How to run the console script ``name`` of this installation, as a command that runs as printed: the
    script beside this interpreter (``.venv/bin/mlflow``), relative to the current folder when it lies
    below it, else absolute; nothing needs to be on PATH."""
    from pathlib import Path

    script = Path(sys.executable).parent / name
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def runnable_hints(message: str) -> str:
    """``message`` with every command it suggests (written `` `marketplace label ...` `` by the core, which
    does not know how the CLI was installed) spelled as :func:`venv_command` spells it, so the hint runs as
    printed without ``marketplace`` on PATH."""
    return message.replace("`marketplace ", f"`{venv_command('marketplace')} ")


def money(amount_minor: int, currency: str) -> str:
    """Integer minor units as people read them: major units with the currency (``1,062.07 EUR``)."""
    from marketplace.money import Money

    return str(Money(int(amount_minor), currency))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                right: Iterable[str] = ()) -> None:
    """A table on stdout; the columns named in ``right`` (numbers, money) are right-aligned. Every cell and
    the title are shown inert (:func:`marketplace.names.rich_safe`: markup and control characters escaped),
    because they carry names and texts that providers and buyers chose."""
    from marketplace.names import rich_safe

    align_right = set(right)
    table = Table(title=rich_safe(title))
    for col in columns:
        table.add_column(rich_safe(col), justify="right" if col in align_right else "left")
    for row in rows:
        table.add_row(*(rich_safe(v) for v in row))
    stdout_console().print(table)


def print_fields(title: str, fields: Mapping[str, Any] | Iterable[tuple[str, Any]],
                 columns: Sequence[str] = ("field", "value")) -> None:
    """A two-column table of name/value pairs (a mapping or pairs)."""
    print_table(title, columns, fields.items() if isinstance(fields, Mapping) else fields)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn :class:`MarketplaceError` (and a database that cannot be reached) into a one-line message on
    stderr, with no password in it, and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (MarketplaceError, OperationalError, InterfaceError) as caught:
            from rich.markup import escape

            from marketplace.settings import redact_secrets

            # A database that goes away mid-command is a one-line error too, never a traceback.
            exc = caught if isinstance(caught, MarketplaceError) else runtime.database_error(
                settings().resolved_database_url, caught)
            # Escape: messages carry "[reason_code]" prefixes that rich would eat as markup; no message
            # shows a password (URLs in it are redacted).
            err_console.print(f"[bold red]error:[/] {escape(runnable_hints(redact_secrets(str(exc))))}",
                              highlight=False, soft_wrap=True)
            logging.getLogger(__name__).debug("command failed", exc_info=True)
            raise typer.Exit(code=exc.exit_code) from exc

    return wrapper
