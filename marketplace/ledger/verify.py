"""``ledger verify``: check every invariant of the books and list each violation.

Checks (DESIGN.md §6, issue 5):

1. ``unbalanced``: every transaction has >= 2 entries and debits = credits.
2. ``books``: over all entries, debits = credits per currency (the books total zero).
3. ``duplicate_key``: no idempotency key is used twice.
4. ``body``: each transaction's stored body hashes to its ``body_sha256`` and lists exactly its entries.
5. ``stored_balance``: each account's stored debit/credit totals equal a replay of the journal.
6. ``allocation``: for each (campaign, period), the latest *complete* pricing run R is the truth: each
   submission's net credits for that period equal R's allocation (payable = allocation - fee, fees = fee,
   budget paid out = allocation), and submissions R does not pay have net zero.
7. ``incomplete_run``: a pricing run newer than R that is still ``allocated`` and has posted part of its
   transactions (a crashed or running revaluation: rerun ``marketplace price``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from marketplace.db import (
    AccountKind,
    Allocation,
    EntrySide,
    JournalEntry,
    JournalTransaction,
    LedgerAccount,
    PricingRun,
    PricingRunStatus,
)
from marketplace.ledger.balances import replay_totals, stored_totals
from marketplace.pricing.policy import parse_policy

__all__ = ["VerifyReport", "Violation", "verify_ledger"]

log = logging.getLogger(__name__)
MAX_LISTED = 200


@dataclass(frozen=True)
class Violation:
    check: str
    message: str


@dataclass
class VerifyReport:
    ok: bool
    checks: dict[str, int]  # check name -> violations found
    violations: list[Violation] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


def _debit_minus_credit() -> Any:
    return case((JournalEntry.side == EntrySide.DEBIT, JournalEntry.amount_minor), else_=-JournalEntry.amount_minor)


def _check_unbalanced(session: Session, out: list[Violation]) -> None:
    debit = func.coalesce(func.sum(case((JournalEntry.side == EntrySide.DEBIT, JournalEntry.amount_minor),
                                        else_=0)), 0)
    credit = func.coalesce(func.sum(case((JournalEntry.side == EntrySide.CREDIT, JournalEntry.amount_minor),
                                         else_=0)), 0)
    rows = session.execute(
        select(JournalTransaction.id, JournalTransaction.idempotency_key, func.count(JournalEntry.id), debit, credit)
        .outerjoin(JournalEntry, JournalEntry.transaction_id == JournalTransaction.id)
        .group_by(JournalTransaction.id, JournalTransaction.idempotency_key)
        .having((func.count(JournalEntry.id) < 2) | (debit != credit))
    ).all()
    for tid, key, n, d, c in rows:
        out.append(Violation("unbalanced", f"transaction {tid} ({key}): {n} entries, debits {d} != credits {c}"))
    orphans = session.execute(
        select(JournalEntry.transaction_id, func.count())
        .outerjoin(JournalTransaction, JournalTransaction.id == JournalEntry.transaction_id)
        .where(JournalTransaction.id.is_(None))
        .group_by(JournalEntry.transaction_id)
    ).all()
    for tid, n in orphans:
        out.append(Violation("unbalanced", f"{n} entries point at missing transaction {tid}"))


def _check_books(session: Session, out: list[Violation]) -> None:
    rows = session.execute(
        select(LedgerAccount.currency, func.sum(_debit_minus_credit()))
        .join(LedgerAccount, LedgerAccount.id == JournalEntry.account_id)
        .group_by(LedgerAccount.currency)
    ).all()
    for currency, total in rows:
        if int(total) != 0:
            out.append(Violation("books", f"{currency}: debits - credits over all entries = {int(total)}, not 0"))


def _check_keys(session: Session, out: list[Violation]) -> None:
    rows = session.execute(
        select(JournalTransaction.idempotency_key, func.count())
        .group_by(JournalTransaction.idempotency_key)
        .having(func.count() > 1)
    ).all()
    for key, n in rows:
        out.append(Violation("duplicate_key", f"idempotency key {key!r} is used by {n} transactions"))


def _check_bodies(session: Session, out: list[Violation]) -> None:
    entries: dict[int, list[list[object]]] = defaultdict(list)
    for tid, code, cur, kind, side, amt in session.execute(
        select(JournalEntry.transaction_id, LedgerAccount.code, LedgerAccount.currency, LedgerAccount.kind,
               JournalEntry.side, JournalEntry.amount_minor).join(LedgerAccount,
                                                                   LedgerAccount.id == JournalEntry.account_id)
    ):
        entries[int(tid)].append([code, cur, AccountKind(kind).value, EntrySide(side).value, int(amt)])
    for tid, key, body, sha in session.execute(
        select(JournalTransaction.id, JournalTransaction.idempotency_key, JournalTransaction.body,
               JournalTransaction.body_sha256)
    ):
        if hashlib.sha256(body.encode()).hexdigest() != sha:
            out.append(Violation("body", f"transaction {tid} ({key}): body does not hash to its body_sha256"))
            continue
        try:
            listed = json.loads(body)["entries"]
        except (ValueError, KeyError, TypeError):
            out.append(Violation("body", f"transaction {tid} ({key}): body is not a posting request"))
            continue
        if sorted(listed) != sorted(entries.get(int(tid), [])):
            out.append(Violation("body", f"transaction {tid} ({key}): entries differ from the hashed body"))


def _check_stored(session: Session, out: list[Violation]) -> None:
    stored, replay = stored_totals(session), replay_totals(session)
    codes: dict[int, str] = {int(a): c for a, c in session.execute(select(LedgerAccount.id, LedgerAccount.code))}
    for aid in sorted(set(stored) | set(replay)):
        if stored.get(aid, (0, 0)) != replay.get(aid, (0, 0)):
            out.append(Violation(
                "stored_balance",
                f"account {codes.get(aid, aid)}: stored (debits, credits) {stored.get(aid)} "
                f"!= replay {replay.get(aid)}",
            ))


def _check_allocations(session: Session, out: list[Violation], stats: dict[str, int]) -> None:
    from marketplace.pricing.service import credited_by_submission  # the same query the poster uses

    runs = session.scalars(select(PricingRun).order_by(PricingRun.campaign_id, PricingRun.period, PricingRun.id)).all()
    by_period: dict[tuple[int, str], list[PricingRun]] = defaultdict(list)
    for r in runs:
        by_period[(r.campaign_id, r.period)].append(r)
    checked = 0
    for (camp, period), group in by_period.items():
        complete = [r for r in group if r.status is PricingRunStatus.COMPLETE]
        latest = complete[-1] if complete else None
        for r in group:
            if r.status is not PricingRunStatus.ALLOCATED or (latest is not None and r.id < latest.id):
                continue
            n_txn = session.scalar(select(func.count()).where(JournalTransaction.pricing_run_id == r.id)) or 0
            if n_txn:
                out.append(Violation("incomplete_run", f"campaign {camp} period {period}: pricing run {r.id} posted "
                                     f"{n_txn} transaction(s) but is not complete; rerun `marketplace price`"))
        credited = credited_by_submission(session, camp, period)
        targets: dict[int, int] = {}
        fee_of = (lambda a: 0)  # noqa: E731
        if latest is not None:
            policy = parse_policy(latest.policy)
            fee_of = policy.fee_minor
            targets = {int(s): int(t) for s, t in session.execute(
                select(Allocation.submission_id, func.sum(Allocation.amount_minor))
                .where(Allocation.pricing_run_id == latest.id).group_by(Allocation.submission_id)
            )}
        for sub in sorted(set(credited) | set(targets)):
            alloc = targets.get(sub, 0)
            got = credited.get(sub, {})
            want = {AccountKind.CAMPAIGN_BUDGET: alloc, AccountKind.PROVIDER_PAYABLE: alloc - fee_of(alloc),
                    AccountKind.MARKETPLACE_FEES: fee_of(alloc)}
            checked += 1
            for kind, amount in want.items():
                if got.get(kind, 0) != amount:
                    run_txt = f"pricing run {latest.id}" if latest is not None else "no complete pricing run"
                    out.append(Violation(
                        "allocation",
                        f"campaign {camp} period {period} submission {sub}: {kind.value} net {got.get(kind, 0)} != "
                        f"{amount} expected from {run_txt}",
                    ))
    stats["submissions_checked"] = checked


def verify_ledger(session: Session) -> VerifyReport:
    """Run every check; never raises for a violation (the CLI turns them into a non-zero exit)."""
    checks = {
        "unbalanced": _check_unbalanced,
        "books": _check_books,
        "duplicate_key": _check_keys,
        "body": _check_bodies,
        "stored_balance": _check_stored,
    }
    violations: list[Violation] = []
    counts: dict[str, int] = {}
    stats: dict[str, int] = {}
    for name, fn in checks.items():
        before = len(violations)
        fn(session, violations)
        counts[name] = len(violations) - before
    before = len(violations)
    _check_allocations(session, violations, stats)
    for name in ("allocation", "incomplete_run"):
        counts[name] = sum(1 for v in violations[before:] if v.check == name)
    stats["transactions"] = int(session.scalar(select(func.count()).select_from(JournalTransaction)) or 0)
    stats["entries"] = int(session.scalar(select(func.count()).select_from(JournalEntry)) or 0)
    stats["accounts"] = int(session.scalar(select(func.count()).select_from(LedgerAccount)) or 0)
    report = VerifyReport(ok=not violations, checks=counts, violations=violations[:MAX_LISTED], stats=stats)
    if violations:
        log.warning("ledger verify: %d violation(s)", len(violations))
    return report
