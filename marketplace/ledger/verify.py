"""``ledger verify``: check every invariant of the books and list each violation.

Checks (docs/pricing-and-ledger.md):

1. ``unbalanced``: every transaction has >= 2 entries and debits = credits.
2. ``books``: over all entries, debits = credits per currency (the books total zero).
3. ``duplicate_key``: no idempotency key is used twice.
4. ``body``: each transaction's stored body hashes to its ``body_sha256``; every stored column (key, kind,
   currency, campaign, period, pricing run, submission, provider, memo) equals the body's field, the body
   lists exactly its entries (account code, currency and kind, side, amount), and ``seal_sha256`` covers
   its id and ``posted_at``.
5. ``stored_balance``: each account's stored debit/credit totals equal a replay of the journal.
6. ``allocation``: for each (campaign, period), the latest *complete* pricing run R is the truth: each
   submission's net credits for that period equal R's allocation (payable = allocation - fee, fees = fee,
   budget paid out = allocation), and submissions R does not pay have net zero.
7. ``incomplete_run``: a pricing run newer than R that is still ``allocated`` and has posted part of its
   transactions (a crashed or running revaluation: rerun ``marketplace price``).
8. ``catalog``: every priced sample's catalog rows still match what its pricing run paid for: the
   ownership fingerprint stored on its allocation (sample, submission, provider, content hash, duplicate
   link, the submission's provider, status and copy link; :mod:`marketplace.db.priced_catalog`), and its
   text still hashes to its content hash. Allocations written before migration 0007 carry no fingerprint;
   for them the allocation's own submission and provider are compared with the sample's.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from marketplace.db import AccountKind, Allocation, EntrySide, JournalEntry, JournalTransaction, LedgerAccount, Sample
from marketplace.db.counting import count_rows
from marketplace.db.ledger import PricingRun, PricingRunStatus
from marketplace.db.priced_catalog import changed_priced_samples
from marketplace.db.pricing_runs import latest_complete_pricing_runs
from marketplace.ledger.balances import credited_by_submission, replay_totals, side_total, signed_amount, stored_totals
from marketplace.ledger.fees import fee_minor, stored_fee_bps
from marketplace.ledger.posting import seal_sha256

__all__ = ["VerifyReport", "Violation", "verify_ledger"]


@dataclass(frozen=True)
class Violation:
    """One broken invariant: ``check`` names it (see the module docstring), ``message`` says where."""

    check: str
    message: str


@dataclass
class VerifyReport:
    """``checks``: violations found per check name (all of them, even past the ``MAX_LISTED`` listed)."""

    ok: bool
    checks: dict[str, int]
    violations: list[Violation] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


log = logging.getLogger(__name__)
MAX_LISTED = 200  # violations listed in a report (all of them are counted)
BODY_BATCH = 2000  # transactions whose bodies and entries are held at once


def _check_unbalanced(session: Session, out: list[Violation]) -> None:
    debit, credit = side_total(EntrySide.DEBIT), side_total(EntrySide.CREDIT)
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
        select(LedgerAccount.currency, func.sum(signed_amount(EntrySide.DEBIT)))
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


# Stored column -> field of the canonical body (marketplace.ledger.posting.canonical_body) it must equal.
_BODY_FIELDS = {"idempotency_key": "key", "kind": "kind", "currency": "currency", "campaign_id": "campaign_id",
                "period": "period", "pricing_run_id": "pricing_run_id", "submission_id": "submission_id",
                "provider_id": "provider_id", "memo": "memo"}


def _stored_value(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def _check_bodies(session: Session, out: list[Violation]) -> None:
    """Every stored column of a transaction against what was hashed: the body (its fields and entries:
    account code, currency and kind, side, amount) and the seal (id and posted_at).

    Transactions are read in keyset batches of ``BODY_BATCH`` ids, each with its entries (by a range of
    transaction ids), so memory holds one batch, never the whole journal."""
    columns = [getattr(JournalTransaction, c) for c in _BODY_FIELDS]
    last_id = None
    while True:
        stmt = select(JournalTransaction.id, JournalTransaction.body, JournalTransaction.body_sha256,
                      JournalTransaction.posted_at, JournalTransaction.seal_sha256, *columns)
        if last_id is not None:
            stmt = stmt.where(JournalTransaction.id > last_id)
        batch = session.execute(stmt.order_by(JournalTransaction.id).limit(BODY_BATCH)).all()
        if not batch:
            return
        first_id, last_id = int(batch[0][0]), int(batch[-1][0])
        entries = _entries_between(session, first_id, last_id)
        for row in batch:
            _check_body(row, entries.get(int(row[0]), []), out)


def _entries_between(session: Session, first_id: int, last_id: int) -> dict[int, list[list[object]]]:
    """Transaction id -> its entries as a body lists them, for transactions ``first_id``..``last_id``."""
    entries: dict[int, list[list[object]]] = defaultdict(list)
    for tid, code, cur, kind, side, amt in session.execute(
        select(JournalEntry.transaction_id, LedgerAccount.code, LedgerAccount.currency, LedgerAccount.kind,
               JournalEntry.side, JournalEntry.amount_minor)
        .join(LedgerAccount, LedgerAccount.id == JournalEntry.account_id)
        .where(JournalEntry.transaction_id.between(first_id, last_id))
    ):
        entries[int(tid)].append([code, cur, AccountKind(kind).value, EntrySide(side).value, int(amt)])
    return entries


def _check_body(row: Sequence[Any], entries: list[list[object]], out: list[Violation]) -> None:
    """One transaction row (id, body, body_sha256, posted_at, seal_sha256, the ``_BODY_FIELDS`` columns)."""
    tid, body, sha, posted_at, seal = row[:5]
    stored = dict(zip(_BODY_FIELDS, row[5:], strict=True))
    key = stored["idempotency_key"]
    if hashlib.sha256(body.encode()).hexdigest() != sha:
        out.append(Violation("body", f"transaction {tid} ({key}): body does not hash to its body_sha256"))
        return
    try:
        data = json.loads(body)
        listed = data["entries"]
    except (ValueError, KeyError, TypeError):
        out.append(Violation("body", f"transaction {tid} ({key}): body is not a posting request"))
        return
    differ = [c for c, f in _BODY_FIELDS.items() if _stored_value(stored[c]) != data.get(f)]
    if differ:
        out.append(Violation("body", f"transaction {tid} ({key}): stored {', '.join(differ)} differ from the "
                                     "hashed body"))
    if sorted(listed) != sorted(entries):
        out.append(Violation("body", f"transaction {tid} ({key}): entries differ from the hashed body"))
    if seal != seal_sha256(tid, sha, posted_at):
        out.append(Violation("body", f"transaction {tid} ({key}): id or posted_at differ from the row's seal "
                                     "(seal_sha256)"))


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


def _check_incomplete_runs(session: Session, out: list[Violation]) -> None:
    """Runs still ``allocated`` (newer than their period's latest complete run) that posted part of their work."""
    latest = {(r.campaign_id, r.period): r.id for r in latest_complete_pricing_runs(session)}
    allocated = session.scalars(
        select(PricingRun).where(PricingRun.status == PricingRunStatus.ALLOCATED).order_by(PricingRun.id)
    ).all()
    for r in allocated:
        if r.id < latest.get((r.campaign_id, r.period), 0):
            continue
        n_txn = count_rows(session, JournalTransaction, JournalTransaction.pricing_run_id == r.id)
        if n_txn:
            out.append(Violation("incomplete_run", f"campaign {r.campaign_id} period {r.period}: pricing run {r.id} "
                                 f"posted {n_txn} transaction(s) but is not complete; rerun `marketplace price`"))


def _check_allocations(session: Session, out: list[Violation]) -> int:
    """Each priced (campaign, period): net credits per submission = the latest complete run's split.

    Returns how many submissions were checked.
    """
    latest = {(r.campaign_id, r.period): r for r in latest_complete_pricing_runs(session)}
    periods = session.execute(
        select(PricingRun.campaign_id, PricingRun.period).distinct().order_by(PricingRun.campaign_id, PricingRun.period)
    ).all()
    checked = 0
    for camp, period in periods:
        run = latest.get((camp, period))
        credited = credited_by_submission(session, camp, period)
        targets: dict[int, int] = {}
        fee_bps = 0
        if run is not None:
            fee_bps = stored_fee_bps(run.policy)
            targets = {int(s): int(t) for s, t in session.execute(
                select(Allocation.submission_id, func.sum(Allocation.amount_minor))
                .where(Allocation.pricing_run_id == run.id).group_by(Allocation.submission_id)
            )}
        run_txt = f"pricing run {run.id}" if run is not None else "no complete pricing run"
        for sub in sorted(set(credited) | set(targets)):
            alloc = targets.get(sub, 0)
            fee = fee_minor(alloc, fee_bps)
            want = {AccountKind.CAMPAIGN_BUDGET: alloc, AccountKind.PROVIDER_PAYABLE: alloc - fee,
                    AccountKind.MARKETPLACE_FEES: fee}
            got = credited.get(sub, {})
            checked += 1
            out.extend(
                Violation("allocation", f"campaign {camp} period {period} submission {sub}: {kind.value} net "
                                        f"{got.get(kind, 0)} != {amount} expected from {run_txt}")
                for kind, amount in want.items() if got.get(kind, 0) != amount
            )
    return checked


def _check_catalog(session: Session, out: list[Violation]) -> None:
    """Catalog rows changed after they were priced, one violation per (pricing run, sample)."""
    what = {"ownership": "its provider, submission, content hash or duplicate link changed after it was priced",
            "text": "its text no longer hashes to its content_hash",
            "missing": "the sample or its submission is gone"}
    for c in changed_priced_samples(session):
        out.append(Violation("catalog", f"pricing run {c.pricing_run_id} sample {c.sample_id}: {what[c.what]}; "
                                        "see the audit trail (`marketplace ledger audit`)"))
    legacy = session.execute(
        select(Allocation.pricing_run_id, Allocation.sample_id)
        .join(Sample, Sample.id == Allocation.sample_id)
        .where(Allocation.catalog_sha256.is_(None),
               (Allocation.provider_id != Sample.provider_id) | (Allocation.submission_id != Sample.submission_id))
        .order_by(Allocation.pricing_run_id, Allocation.sample_id)
    ).all()
    for run_id, sid in legacy:
        out.append(Violation("catalog", f"pricing run {run_id} sample {sid}: {what['ownership']}"))


def verify_ledger(session: Session) -> VerifyReport:
    """Run every check; never raises for a violation (the CLI turns them into a non-zero exit)."""
    checks = {
        "unbalanced": _check_unbalanced,
        "books": _check_books,
        "duplicate_key": _check_keys,
        "body": _check_bodies,
        "stored_balance": _check_stored,
        "allocation": _check_allocations,
        "incomplete_run": _check_incomplete_runs,
        "catalog": _check_catalog,
    }
    violations: list[Violation] = []
    counts: dict[str, int] = {}
    stats: dict[str, int] = {}
    for name, fn in checks.items():
        before = len(violations)
        checked = fn(session, violations)
        counts[name] = len(violations) - before
        if name == "allocation":
            stats["submissions_checked"] = checked or 0
    for name, table in (("transactions", JournalTransaction), ("entries", JournalEntry), ("accounts", LedgerAccount)):
        stats[name] = count_rows(session, table)
    report = VerifyReport(ok=not violations, checks=counts, violations=violations[:MAX_LISTED], stats=stats)
    if violations:
        log.warning("ledger verify: %d violation(s)", len(violations))
    return report
