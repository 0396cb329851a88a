"""Rewriting posted rows: every insert-over-an-existing-row variant is refused by the database (both engines),
and a row changed with the triggers switched off is reported by ``ledger verify`` (every stored column)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import Allocation, JournalEntry, JournalTransaction, PricingRun, is_postgres
from marketplace.ledger import verify_ledger
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission
from tests.support.tamper import bypass_ledger_triggers as _bypass

# Per append-only table: a column that a rewrite would change (ON CONFLICT DO UPDATE SET col = ...).
TABLES = {"journal_transactions": "memo", "journal_entries": "amount_minor", "allocations": "amount_minor",
          "pricing_runs": "n_paid"}


@pytest.fixture
def priced(session_factory: sessionmaker[Session]) -> int:
    """A campaign priced for 2026-11: complete pricing run, allocations and journal transactions."""
    with session_factory() as s, s.begin():
        camp = make_campaign(s, budget_minor=1000)
        prov = make_provider(s)
        _, xs = make_submission(s, prov, ["rewrite a", "rewrite b"])
        _, ys = make_submission(s, make_provider(s), ["rewrite c"])
        make_score_run(s, camp, {xs[0].id: 1.0, xs[1].id: 2.0, ys[0].id: 3.0})
        cid = camp.id
    run_pricing(session_factory, cid, "2026-11", PricingPolicy(screen="none", cap_percentile=100))
    return cid


def _snapshot(factory: sessionmaker[Session]) -> list[object]:
    with factory() as s:
        return [s.execute(select(t).order_by(t.id)).scalars().all().__len__()
                for t in (JournalTransaction, JournalEntry, Allocation, PricingRun)] + [
            [tuple(r) for r in s.execute(select(JournalTransaction.id, JournalTransaction.memo,
                                                JournalTransaction.kind, JournalTransaction.provider_id,
                                                JournalTransaction.posted_at).order_by(JournalTransaction.id))],
            s.scalar(select(func.sum(Allocation.amount_minor))),
        ]


def _refused(engine: Engine, sql: str, params: dict[str, object] | None = None) -> str:
    with pytest.raises(DBAPIError) as info, engine.begin() as conn:
        conn.execute(text(sql), params or {})
    return str(info.value.orig)


def _first(table: str) -> str:
    return f"SELECT * FROM {table} WHERE id = (SELECT min(id) FROM {table})"


@pytest.mark.parametrize("table", list(TABLES))
@pytest.mark.parametrize("variant", ["replace", "insert_or_replace", "on_conflict_do_update", "insert_or_ignore"])
def test_rewrite_of_an_existing_row_is_refused(engine: Engine, session_factory: sessionmaker[Session], priced: int,
                                               table: str, variant: str) -> None:
    col = TABLES[table]
    statements = {
        "replace": f"REPLACE INTO {table} {_first(table)}",
        "insert_or_replace": f"INSERT OR REPLACE INTO {table} {_first(table)}",
        "insert_or_ignore": f"INSERT OR IGNORE INTO {table} {_first(table)}",
        "on_conflict_do_update": f"INSERT INTO {table} {_first(table)} ON CONFLICT (id) DO UPDATE SET {col} = "
                                 f"{'excluded.' + col + ' + 1' if col != 'memo' else chr(39) + 'rewritten' + chr(39)}",
    }
    if is_postgres(engine) and variant != "on_conflict_do_update":
        pytest.skip("REPLACE / INSERT OR ... are SQLite syntax")
    before = _snapshot(session_factory)
    msg = _refused(engine, statements[variant])
    assert "refused" in msg or "sealed" in msg, msg
    assert _snapshot(session_factory) == before
    with session_factory() as s:
        assert verify_ledger(s).ok


@pytest.mark.parametrize("kind", ["replace_changed_columns", "unique_key_replace"])
def test_sqlite_replace_with_other_values_is_refused(engine: Engine, session_factory: sessionmaker[Session],
                                                     priced: int, kind: str) -> None:
    """The probe's attack: REPLACE a posted transaction with another kind, provider, memo and date."""
    if is_postgres(engine):
        pytest.skip("SQLite syntax")
    with session_factory() as s:
        t = s.scalars(select(JournalTransaction).order_by(JournalTransaction.id)).first()
        assert t is not None
    new_id = t.id if kind == "replace_changed_columns" else t.id + 1000
    before = _snapshot(session_factory)
    _refused(engine, "REPLACE INTO journal_transactions (id, idempotency_key, body_sha256, body, kind, currency, "
                     "campaign_id, period, memo, posted_at) VALUES (:id, :key, :sha, :body, 'manual', 'EUR', NULL, "
                     "NULL, 'rewritten', '2020-01-01 00:00:00')",
             {"id": new_id, "key": t.idempotency_key, "sha": t.body_sha256, "body": t.body})
    assert _snapshot(session_factory) == before


@pytest.mark.parametrize("sql", [
    "UPDATE pricing_runs SET budget_minor = budget_minor + 1, unallocated_minor = unallocated_minor + 1",
    "UPDATE pricing_runs SET status = 'allocated'",
    "UPDATE pricing_runs SET audit_override = 'later'",
    "DELETE FROM pricing_runs",
])
def test_complete_pricing_runs_are_frozen(engine: Engine, session_factory: sessionmaker[Session], priced: int,
                                          sql: str) -> None:
    before = _snapshot(session_factory)
    assert "refused" in _refused(engine, sql)
    assert _snapshot(session_factory) == before


FIRST_TXN = "(SELECT min(id) FROM journal_transactions)"


@pytest.mark.parametrize("change", [
    "kind = 'manual'",
    "memo = 'rewritten'",
    "provider_id = NULL",
    "campaign_id = NULL",
    "period = '2026-12'",
    "currency = 'USD'",
    "submission_id = NULL",
    "pricing_run_id = NULL",
    "idempotency_key = 'other-key'",
    "posted_at = '2020-01-01 00:00:00'",
    "id = id + 100000",
])
def test_a_column_changed_behind_the_triggers_is_reported(engine: Engine, session_factory: sessionmaker[Session],
                                                          priced: int, change: str) -> None:
    # Moving the header alone would orphan its entries; an id change moves both, so only the seal can tell.
    moves = ([f"UPDATE journal_entries SET transaction_id = transaction_id + 100000 WHERE transaction_id = {FIRST_TXN}"]
             if change.startswith("id =") else [])
    _bypass(engine, *moves, f"UPDATE journal_transactions SET {change} WHERE id = {FIRST_TXN}")
    with session_factory() as s:
        report = verify_ledger(s)
    assert not report.ok and report.checks["body"] >= 1, report


@pytest.mark.parametrize("change", ["amount_minor = amount_minor + 1", "side = CASE WHEN side = 'debit' "
                                    "THEN 'credit' ELSE 'debit' END"])
def test_entries_changed_behind_the_triggers_are_reported(engine: Engine, session_factory: sessionmaker[Session],
                                                          priced: int, change: str) -> None:
    _bypass(engine, f"UPDATE journal_entries SET {change} WHERE transaction_id = {FIRST_TXN}")
    with session_factory() as s:
        report = verify_ledger(s)
    assert not report.ok and report.checks["body"] >= 1, report
