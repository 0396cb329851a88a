"""Transient-conflict retries and the idempotency-key race path of posting."""

from __future__ import annotations

import random

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import EntrySide
from marketplace.db.retry import run_in_transaction
from marketplace.errors import ConflictError
from marketplace.ledger import (
    EntryRequest,
    TransactionRequest,
    budget_account,
    payable_account,
    post_transactions,
    verify_ledger,
)
from marketplace.ledger import posting as posting_module
from tests.support.catalog import make_campaign, make_provider


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def test_run_in_transaction_retries_then_succeeds(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from marketplace.db import make_session_factory

    factory = make_session_factory(sqlite_engine)
    calls = []

    def work(session: Session) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("BEGIN", {}, _PgError("40P01"))
        return "done"

    assert run_in_transaction(factory, work, base_delay_s=0.0, rng=random.Random(0)) == "done"
    assert len(calls) == 3
    # The unique-violation race of an idempotent writer is retried too; a CHECK violation is not.
    races: list[int] = []

    def race_once(session: Session) -> str:
        races.append(1)
        if len(races) == 1:
            raise IntegrityError("INSERT", {}, _PgError("23505"))
        return "re-read"

    assert run_in_transaction(factory, race_once, base_delay_s=0.0) == "re-read" and len(races) == 2
    with pytest.raises(IntegrityError):
        run_in_transaction(factory, lambda s: (_ for _ in ()).throw(IntegrityError("x", {}, _PgError("23514"))),
                           base_delay_s=0.0)
    with pytest.raises(OperationalError):
        run_in_transaction(factory, lambda s: (_ for _ in ()).throw(OperationalError("x", {}, _PgError("40001"))),
                           attempts=2, base_delay_s=0.0)


def test_key_race_is_resolved_by_rereading(session_factory: sessionmaker[Session],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Both checks miss a concurrent winner: the insert's unique violation leads to a re-read and compare."""
    with session_factory() as s, s.begin():
        camp, prov = make_campaign(s), make_provider(s)
    budget, payable = budget_account(camp.id, "EUR"), payable_account(prov.id, "EUR")

    def req(amount: int) -> TransactionRequest:
        return TransactionRequest("race", "EUR", (EntryRequest(budget, EntrySide.DEBIT, amount),
                                                  EntryRequest(payable, EntrySide.CREDIT, amount)))

    with session_factory() as s, s.begin():
        (winner,) = post_transactions(s, [req(10)])
    real = posting_module._existing
    blind = {"n": 0}

    def blind_twice(session, keys):  # type: ignore[no-untyped-def]
        blind["n"] += 1
        return {} if blind["n"] <= 2 else real(session, keys)

    monkeypatch.setattr(posting_module, "_existing", blind_twice)
    with session_factory() as s, s.begin():
        (again,) = post_transactions(s, [req(10)])
    assert blind["n"] == 3 and again.transaction_id == winner.transaction_id and not again.created
    blind["n"] = 0
    with pytest.raises(ConflictError, match="race"), session_factory() as s, s.begin():
        post_transactions(s, [req(11)])
    with session_factory() as s:
        assert verify_ledger(s).ok and verify_ledger(s).stats["transactions"] == 1
