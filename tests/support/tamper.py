"""Changing posted ledger rows behind the database's back (as a superuser or the file's owner could), so
tests can check that ``ledger verify`` reports what the triggers would have refused."""

from __future__ import annotations

from sqlalchemy import Engine, text

from marketplace.db import is_postgres

__all__ = ["bypass_ledger_triggers"]


def bypass_ledger_triggers(engine: Engine, *statements: str) -> None:
    """Run ``statements`` with the no-update triggers of journal transactions and entries out of the way."""
    with engine.begin() as conn:
        if is_postgres(engine):
            conn.execute(text("ALTER TABLE journal_transactions DISABLE TRIGGER USER"))
            conn.execute(text("ALTER TABLE journal_entries DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER journal_transactions_no_update"))
            conn.execute(text("DROP TRIGGER journal_entries_no_update"))
        for sql in statements:
            conn.execute(text(sql))
    if is_postgres(engine):  # after COMMIT: the deferred foreign key events are gone
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE journal_transactions ENABLE TRIGGER USER"))
            conn.execute(text("ALTER TABLE journal_entries ENABLE TRIGGER USER"))
