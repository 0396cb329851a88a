"""``marketplace db upgrade|downgrade``: the database schema (Alembic migrations)."""

from __future__ import annotations

import typer

from marketplace.cli.common import JsonOpt, emit, handle_errors, open_db
from marketplace.settings import redact_url

__all__ = ["register"]

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
@handle_errors
def upgrade(revision: str = typer.Argument("head", help="Target revision."), as_json: bool = JsonOpt) -> None:
    """Create or migrate the schema to REVISION (default: the latest)."""
    from marketplace.db.migrate import current_revision
    from marketplace.db.migrate import upgrade as upgrade_schema

    engine, _ = open_db(upgrade=False)
    upgrade_schema(engine, revision)
    shown = redact_url(engine.url.render_as_string(hide_password=False))
    emit({"database": shown, "revision": current_revision(engine)},
         as_json, lambda d: typer.echo(f"{d['database']} at revision {d['revision']}"))


@db_app.command("downgrade")
@handle_errors
def downgrade(
    revision: str = typer.Argument(..., help="Target revision, or 'base'."),
    drop_books: bool = typer.Option(
        False, "--drop-books",
        help="Allow a downgrade past the ledger's migration to drop posted transactions and pricing runs."),
) -> None:
    """Migrate the schema down to REVISION.

    Refused, saying what would be lost, when it would drop books that hold money, unless --drop-books.
    """
    from marketplace.db.migrate import current_revision
    from marketplace.db.migrate import downgrade as downgrade_schema

    engine, _ = open_db(upgrade=False)
    downgrade_schema(engine, revision, drop_books=drop_books)
    typer.echo(f"at revision {current_revision(engine)}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
