"""Programmatic Alembic: ``marketplace db upgrade`` works from an installed package, no alembic.ini needed.

``infra/alembic.ini`` points at the same scripts for operators who prefer the ``alembic`` command.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Engine, inspect, text

from marketplace.errors import ConfigError, ConflictError
from marketplace.money import Money

__all__ = ["AUDIT_REVISION", "LEDGER_REVISION", "alembic_config", "books_summary", "current_revision", "downgrade",
           "head_revision", "upgrade"]

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
LEDGER_REVISION = "0005_ledger"  # creates the books: pricing runs, allocations, accounts and the journal
AUDIT_REVISION = "0007_audit_trail"  # creates the audit trail


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on % in URL-encoded passwords.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: latest). Safe to run on an up-to-date database."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    log.info("database schema at %s", current_revision(engine))


def _downgraded_revisions(engine: Engine, revision: str) -> list[str]:
    """The revisions a downgrade to ``revision`` would undo (newest first); ConfigError for an unknown one."""
    current = current_revision(engine)
    if current is None:
        return []
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    try:
        return [r.revision for r in script.iterate_revisions(current, revision)]
    except (CommandError, RevisionError) as exc:
        raise ConfigError(f"cannot downgrade from {current} to {revision!r}: {exc}; give a revision id "
                          f"(`marketplace db upgrade` lists the head) or 'base'") from exc


def _audit_events(engine: Engine) -> int:
    """How many events the audit trail holds (0 before migration 0007)."""
    if "audit_events" not in inspect(engine).get_table_names():
        return 0
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one())


def books_summary(engine: Engine) -> str | None:
    """What the books hold, in words ("3 posted transactions, 12.00 EUR posted, 1 pricing run"), or None when
    nothing was ever priced or posted."""
    with engine.connect() as conn:
        n_txn = int(conn.execute(text("SELECT count(*) FROM journal_transactions")).scalar_one())
        n_runs = int(conn.execute(text("SELECT count(*) FROM pricing_runs")).scalar_one())
        posted = conn.execute(text(
            "SELECT a.currency, sum(e.amount_minor) FROM journal_entries e JOIN ledger_accounts a "
            "ON a.id = e.account_id WHERE e.side = 'debit' GROUP BY a.currency ORDER BY a.currency"
        )).all()
    n_audit = _audit_events(engine)
    if not n_txn and not n_runs and not n_audit:
        return None
    totals = ", ".join(str(Money(int(total), cur)) for cur, total in posted) or "nothing"
    audit = f", {n_audit} audit event(s)" if n_audit else ""
    return f"{n_txn} posted transaction(s) totalling {totals}, {n_runs} pricing run(s){audit}"


def downgrade(engine: Engine, revision: str, *, drop_books: bool = False) -> None:
    """Migrate the schema down to ``revision``.

    A downgrade that undoes the ledger's migration (:data:`LEDGER_REVISION`) drops the books, one that
    undoes :data:`AUDIT_REVISION` drops the audit trail; once anything was priced, posted or audited it is
    refused (ConflictError saying what would be lost) unless
    ``drop_books`` is True (``marketplace db downgrade --drop-books``).
    """
    undone = _downgraded_revisions(engine, revision)
    if LEDGER_REVISION in undone or AUDIT_REVISION in undone:
        if LEDGER_REVISION in undone:
            held, lost = books_summary(engine), "the books"
        else:
            n_audit = _audit_events(engine)
            held, lost = (f"{n_audit} audit event(s)" if n_audit else None), "the audit trail"
        if held is not None and not drop_books:
            raise ConflictError(
                f"downgrading to {revision!r} would drop {lost}: {held}; nothing was changed. Back up the "
                "database, then pass --drop-books to drop them anyway"
            )
        if held is not None:
            log.warning("downgrade to %s drops the books: %s", revision, held)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # SQLite's DROP TABLE deletes the rows first and fails on every foreign key still pointing at them;
            # the tables that point are dropped by the same downgrade. Only settable outside a transaction.
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, revision)
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None  # the package always ships at least one revision
    return head
