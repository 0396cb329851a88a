"""The ledger on both engines: idempotent posting, conflicts, and tamper attempts the database refuses."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import EntrySide, JournalEntry, JournalTransaction, LedgerAccount, is_postgres
from marketplace.errors import ConflictError, ValidationError
from marketplace.ledger import (
    AccountRef,
    EntryRequest,
    TransactionRequest,
    budget_account,
    payable_account,
    post_transactions,
    replay_totals,
    verify_ledger,
)
from marketplace.ledger.balances import stored_totals
from tests.support.catalog import make_campaign, make_provider


@pytest.fixture
def accounts(session_factory: sessionmaker[Session]) -> tuple[AccountRef, AccountRef]:
    with session_factory() as s, s.begin():
        camp = make_campaign(s)
        prov = make_provider(s)
    return budget_account(camp.id, "EUR"), payable_account(prov.id, "EUR")


def _credit(budget: AccountRef, payable: AccountRef, key: str, amount: int,
            memo: str | None = None) -> TransactionRequest:
    return TransactionRequest(key, "EUR", (EntryRequest(budget, EntrySide.DEBIT, amount),
                                           EntryRequest(payable, EntrySide.CREDIT, amount)), memo=memo)


def _counts(factory: sessionmaker[Session]) -> tuple[int, int]:
    with factory() as s:
        return (s.scalar(select(func.count()).select_from(JournalTransaction)) or 0,
                s.scalar(select(func.count()).select_from(JournalEntry)) or 0)


def test_post_is_idempotent_and_conflicts_write_nothing(session_factory: sessionmaker[Session], accounts) -> None:
    budget, payable = accounts
    with session_factory() as s, s.begin():
        first = post_transactions(s, [_credit(budget, payable, "k1", 500), _credit(budget, payable, "k2", 7)])
    assert [r.created for r in first] == [True, True]
    with session_factory() as s, s.begin():
        again = post_transactions(s, [_credit(budget, payable, "k1", 500)])
    assert again[0].transaction_id == first[0].transaction_id and not again[0].created
    assert _counts(session_factory) == (2, 4)
    with pytest.raises(ConflictError, match="k1"), session_factory() as s, s.begin():
        post_transactions(s, [_credit(budget, payable, "k3", 1), _credit(budget, payable, "k1", 501)])
    assert _counts(session_factory) == (2, 4)  # k3 was not written either
    with pytest.raises(ConflictError), session_factory() as s, s.begin():
        post_transactions(s, [_credit(budget, payable, "k1", 500, memo="different memo")])
    with session_factory() as s:
        assert stored_totals(s) == replay_totals(s)
        acct = s.scalar(select(LedgerAccount).where(LedgerAccount.code == payable.code))
        assert acct is not None and (acct.debits_minor, acct.credits_minor) == (0, 507)
        assert verify_ledger(s).ok


@pytest.mark.parametrize("amount", [0, -5, 1.5, True])
def test_post_rejects_bad_amounts_before_the_database(session_factory: sessionmaker[Session], accounts,
                                                      amount: object) -> None:
    budget, payable = accounts
    with pytest.raises(ValidationError, match="positive integers"), session_factory() as s, s.begin():
        post_transactions(s, [_credit(budget, payable, "bad", amount)])  # type: ignore[arg-type]


def test_post_rejects_unbalanced_and_single_leg(session_factory: sessionmaker[Session], accounts) -> None:
    budget, payable = accounts
    unbalanced = TransactionRequest("u", "EUR", (EntryRequest(budget, EntrySide.DEBIT, 10),
                                                 EntryRequest(payable, EntrySide.CREDIT, 9)))
    with pytest.raises(ValidationError, match="does not balance"), session_factory() as s, s.begin():
        post_transactions(s, [unbalanced])
    one_leg = TransactionRequest("o", "EUR", (EntryRequest(budget, EntrySide.DEBIT, 10),))
    with pytest.raises(ValidationError, match="at least 2"), session_factory() as s, s.begin():
        post_transactions(s, [one_leg])
    assert _counts(session_factory) == (0, 0)


# --- Tamper attempts through raw SQL: the database itself must refuse every one. -------------------------


def _seed(session_factory: sessionmaker[Session], accounts) -> tuple[int, int, int]:
    budget, payable = accounts
    with session_factory() as s, s.begin():
        (res,) = post_transactions(s, [_credit(budget, payable, "seed", 100)])
        ids = {r.code: r.id for r in s.scalars(select(LedgerAccount))}
    return res.transaction_id, ids[budget.code], ids[payable.code]


def _refused(engine: Engine, *statements: str, params: dict[str, object] | None = None) -> str:
    with pytest.raises(DBAPIError) as info, engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql), params or {})
    return str(info.value.orig)


def _entry(tid: int, aid: int, side: str, amount: str) -> str:
    return ("INSERT INTO journal_entries (transaction_id, account_id, side, amount_minor) "
            f"VALUES ({tid}, {aid}, '{side}', {amount})")


def _header(tid: int, key: str, currency: str = "EUR") -> str:
    return ("INSERT INTO journal_transactions (id, idempotency_key, body_sha256, body, kind, currency, posted_at) "
            f"VALUES ({tid}, '{key}', 'x', '{{}}', 'manual', '{currency}', CURRENT_TIMESTAMP)")


def test_tamper_unbalanced_insert_refused(engine: Engine, session_factory: sessionmaker[Session], accounts) -> None:
    _, b, p = _seed(session_factory, accounts)
    msg = _refused(engine, _entry(900, b, "debit", "100"), _entry(900, p, "credit", "90"), _header(900, "evil"))
    assert "balance" in msg
    # Legs without a header (never sealed): refused at COMMIT by the deferred foreign key / balance trigger.
    _refused(engine, _entry(901, b, "debit", "100"), _entry(901, p, "credit", "100"))
    # A header alone, or with one leg, is refused too.
    _refused(engine, _header(902, "empty"))
    _refused(engine, _entry(903, b, "debit", "5"), _header(903, "one-leg"))
    assert _counts(session_factory) == (1, 2)


def test_tamper_other_currency_leg_refused(engine: Engine, session_factory: sessionmaker[Session], accounts) -> None:
    _, b, p = _seed(session_factory, accounts)
    msg = _refused(engine, _entry(910, b, "debit", "10"), _entry(910, p, "credit", "10"), _header(910, "usd", "USD"))
    assert "balance" in msg or "currency" in msg


def test_tamper_entry_added_to_sealed_transaction_refused(engine: Engine, session_factory: sessionmaker[Session],
                                                          accounts) -> None:
    tid, b, p = _seed(session_factory, accounts)
    msg = _refused(engine, _entry(tid, b, "debit", "50"), _entry(tid, p, "credit", "50"))
    assert "sealed" in msg


@pytest.mark.parametrize("sql", [
    "UPDATE journal_entries SET amount_minor = 1000",
    "UPDATE journal_entries SET side = 'credit' WHERE side = 'debit'",
    "DELETE FROM journal_entries",
    "UPDATE journal_transactions SET idempotency_key = 'other'",
    "DELETE FROM journal_transactions",
])
def test_tamper_update_or_delete_of_posted_rows_refused(engine: Engine, session_factory: sessionmaker[Session],
                                                        accounts, sql: str) -> None:
    _seed(session_factory, accounts)
    assert "refused" in _refused(engine, sql)
    assert _counts(session_factory) == (1, 2)
    with session_factory() as s:
        assert verify_ledger(s).ok


@pytest.mark.parametrize("amount", ["1.5", "-100", "0", "'1.5'"])
def test_tamper_non_integer_or_non_positive_amount_refused(engine: Engine, session_factory: sessionmaker[Session],
                                                           accounts, amount: str) -> None:
    _, b, p = _seed(session_factory, accounts)
    neg = "-" + amount if not amount.startswith(("-", "'")) else amount
    msg = _refused(engine, _entry(920, b, "debit", amount),
                   _entry(920, p, "credit", neg if amount == "0" else amount), _header(920, "bad-amount"))
    assert "amount" in msg  # a CHECK on amount_minor, not some unrelated failure
    assert _counts(session_factory) == (1, 2)


def test_postgres_deferred_balance_trigger_and_truncate(engine: Engine, session_factory: sessionmaker[Session],
                                                        accounts) -> None:
    if not is_postgres(engine):
        pytest.skip("PostgreSQL-only objects (SQLite has the seal triggers, tested above)")
    _, b, p = _seed(session_factory, accounts)
    # With the seal trigger switched off inside this database transaction, the deferred constraint
    # trigger still refuses the unbalanced transaction at COMMIT.
    msg = _refused(engine, "ALTER TABLE journal_transactions DISABLE TRIGGER journal_transactions_seal",
                   _entry(930, b, "debit", "10"), _entry(930, p, "credit", "9"), _header(930, "late"))
    assert "at commit" in msg and "does not balance" in msg
    msg = _refused(engine, "SET CONSTRAINTS journal_transactions_balanced IMMEDIATE",
                   "ALTER TABLE journal_transactions DISABLE TRIGGER journal_transactions_seal",
                   _entry(931, b, "debit", "1"), _header(931, "single"))
    assert "does not balance" in msg
    assert "refused" in _refused(engine, "TRUNCATE journal_entries CASCADE")
    assert _counts(session_factory) == (1, 2)


def test_stored_balance_tamper_is_caught_by_verify(engine: Engine, session_factory: sessionmaker[Session],
                                                   accounts) -> None:
    """Account totals are mutable by design (they are a cache); verify compares them with a replay."""
    _seed(session_factory, accounts)
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_accounts SET credits_minor = credits_minor + 1 "
                          "WHERE kind = 'provider_payable'"))
    with session_factory() as s:
        report = verify_ledger(s)
    assert not report.ok and report.checks["stored_balance"] == 1
