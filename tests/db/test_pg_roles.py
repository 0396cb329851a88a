"""PostgreSQL roles (infra/postgres-roles.sql, infra/postgres-grants.sql): migrations run as the owner, the
application role prices and posts, but cannot disable a trigger, delete, update, truncate or drop the books
or the audit trail. SQLite has no roles: there the triggers alone guard the books (tests/ledger)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from marketplace.db import create_db_engine, make_session_factory
from marketplace.db.migrate import upgrade
from marketplace.ledger import verify_ledger
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

INFRA = Path(__file__).resolve().parents[2] / "infra"

REFUSED = [
    "ALTER TABLE journal_entries DISABLE TRIGGER ALL",
    "ALTER TABLE journal_transactions DISABLE TRIGGER journal_transactions_immutable",
    "ALTER TABLE audit_events DISABLE TRIGGER USER",
    "DELETE FROM journal_entries",
    "DELETE FROM journal_transactions",
    "DELETE FROM allocations",
    "DELETE FROM audit_events",
    "UPDATE journal_entries SET amount_minor = amount_minor + 1",
    "UPDATE audit_events SET actor = 'mallory'",
    "TRUNCATE journal_entries CASCADE",
    "TRUNCATE pricing_runs CASCADE",
    "DROP TABLE journal_entries CASCADE",
    "DROP TRIGGER journal_entries_immutable ON journal_entries",
    "ALTER TABLE allocations DROP COLUMN catalog_sha256",
    "CREATE TABLE shadow_books (id int)",
    "UPDATE alembic_version SET version_num = '0001_catalog'",
]


def _as_role(url: str, role: str) -> str:
    return url.replace("options=", f"options=-crole%3D{role}%20", 1)


def _run_script(engine: Engine, name: str) -> None:
    """Run a shipped SQL file as psql would (no parameters: its %I are format() placeholders)."""
    with engine.begin() as conn:
        conn.connection.driver_connection.execute((INFRA / name).read_text())  # type: ignore[union-attr]


@pytest.fixture
def roles(pg_db_url: str) -> Iterator[tuple[Engine, Engine]]:
    """(owner engine, app engine) of a database migrated by the owner with the app's grants applied
    (PostgreSQL only: SQLite has no users, its triggers alone guard the books)."""
    db_url = pg_db_url
    admin = create_db_engine(db_url)
    _run_script(admin, "postgres-roles.sql")
    admin.dispose()
    owner = create_db_engine(_as_role(db_url, "marketplace_owner"))
    upgrade(owner)
    _run_script(owner, "postgres-grants.sql")
    app = create_db_engine(_as_role(db_url, "marketplace_app"))
    try:
        yield owner, app
    finally:
        app.dispose()
        owner.dispose()


def test_the_app_role_posts_but_cannot_touch_the_books(roles: tuple[Engine, Engine]) -> None:
    owner, app = roles
    with app.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == "marketplace_app"
    factory = make_session_factory(app)
    with factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=5000)
        _, xs = make_submission(s, make_provider(s), ["role test one", "role test two"])
        make_score_run(s, camp, {xs[0].id: 1.0, xs[1].id: 2.0})
        cid = camp.id
    outcome = run_pricing(factory, cid, "2026-11", PricingPolicy(screen="none", cap_percentile=100))
    assert outcome.status == "complete" and outcome.n_posted > 0
    upgrade(app)  # an up-to-date schema: the app role's automatic upgrade is a no-op
    for statement in REFUSED:
        with pytest.raises(DBAPIError) as info, app.begin() as conn:
            conn.execute(text(statement))
        message = str(info.value.orig)
        assert "must be owner" in message or "permission denied" in message, (statement, message)
    with factory() as s:
        report = verify_ledger(s)
    assert report.ok, report.violations
    with owner.connect() as conn:  # the owner still owns everything (migrations keep working)
        owners = set(conn.execute(text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = "
                                       "current_schema()")).scalars())
    assert owners == {"marketplace_owner"}
