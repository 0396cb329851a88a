"""Migrations: upgrade from empty, downgrade to base and upgrade again, and match the ORM exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from marketplace.db import Base, create_db_engine
from marketplace.db.migrate import current_revision, downgrade, head_revision, upgrade


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables

        downgrade(engine, "base")
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set()

        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_migrations_match_models(db_url: str) -> None:
    """A model change without a migration (or the reverse) fails here."""
    engine = create_db_engine(db_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"schema drift between models and migrations: {diff}"
    finally:
        engine.dispose()
