"""A downgrade past the ledger's migration never drops posted money silently (both engines)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db.migrate import LEDGER_REVISION, current_revision, downgrade, head_revision, upgrade
from marketplace.errors import ConfigError, ConflictError
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission


def _price(factory: sessionmaker[Session]) -> None:
    with factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=1234)
        _, xs = make_submission(s, make_provider(s), ["downgrade a", "downgrade b"])
        make_score_run(s, camp, {xs[0].id: 1.0, xs[1].id: 3.0})
        cid = camp.id
    run_pricing(factory, cid, "2026-11", PricingPolicy(screen="none", cap_percentile=100))


def _steps_below_the_ledger() -> str:
    """A relative target (``-N``) one revision below the ledger's, whatever the head is now."""
    return f"-{int(head_revision()[:4]) - int(LEDGER_REVISION[:4]) + 1}"


@pytest.mark.parametrize("target", ["base", "0004_near_duplicates", "relative"])
def test_downgrade_past_the_ledger_is_refused_once_money_is_posted(
        engine: Engine, session_factory: sessionmaker[Session], target: str) -> None:
    target = _steps_below_the_ledger() if target == "relative" else target
    _price(session_factory)
    with pytest.raises(ConflictError) as info:
        downgrade(engine, target)
    msg = str(info.value)
    assert "1 posted transaction(s) totalling 12.34 EUR" in msg and "1 pricing run(s)" in msg
    assert "--drop-books" in msg and "\n" not in msg
    assert current_revision(engine) == head_revision()
    assert "journal_transactions" in inspect(engine).get_table_names()


def test_downgrade_that_keeps_the_books_and_the_explicit_override(engine: Engine,
                                                                  session_factory: sessionmaker[Session]) -> None:
    _price(session_factory)
    with pytest.raises(ConflictError, match=r"would drop the audit trail: \d+ audit event\(s\)"):
        downgrade(engine, LEDGER_REVISION)  # the audit trail of the pricing would go
    downgrade(engine, LEDGER_REVISION, drop_books=True)  # undoes only later migrations: the books stay
    assert current_revision(engine) == LEDGER_REVISION
    upgrade(engine)
    downgrade(engine, "base", drop_books=True)
    assert current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) - {"alembic_version"} == set()


def test_empty_books_downgrade_freely_and_unknown_revisions_say_so(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="cannot downgrade"):
        downgrade(engine, "no_such_revision")
    downgrade(engine, "base")
    assert current_revision(engine) is None
