"""Posting journal transactions: validated, idempotent, batched, and safe under concurrency.

``post_transactions(session, requests)`` writes many transactions in a few round trips (executemany).
For each request:

- same idempotency key and same canonical body (sha256) as a stored transaction → the stored id is
  returned and nothing is written (``PostResult.created`` is False);
- same key, different body → :class:`~marketplace.errors.ConflictError`, raised before anything of the
  batch is written (the caller's unit of work rolls back anyway);
- otherwise the entries are inserted, then the header that seals them (see marketplace/db/ledger.py),
  and the stored account totals are updated in the same database transaction. SQLite: executemany;
  PostgreSQL: one ``INSERT ... SELECT FROM json_to_recordset`` per table (benchmarks/ledger.py).

Concurrency: account rows are locked in ascending id order (PostgreSQL ``FOR UPDATE``) *before* the
keys are re-read, so a concurrent poster of the same key is seen once it commits. A unique violation
on the key that still slips through (two different bodies on disjoint accounts) is caught inside a
SAVEPOINT, the keys are re-read and compared, and the rest is retried once. Serialization failures
and deadlocks are retried by the edge (:mod:`marketplace.db.retry`).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marketplace.db import EntrySide, JournalEntry, JournalTransaction, LedgerAccount, TransactionKind
from marketplace.db.base import utcnow
from marketplace.db.engine import is_postgres
from marketplace.errors import ConflictError, ValidationError
from marketplace.ledger.accounts import AccountRef, ensure_accounts, lock_accounts
from marketplace.ledger.limits import MAX_STORED_MINOR
from marketplace.money import minor_digits

__all__ = ["EntryRequest", "PostResult", "TransactionRequest", "canonical_body", "post_transactions", "seal_sha256"]


@dataclass(frozen=True)
class TransactionRequest:
    """What a caller asks to post. Everything here is covered by the body hash."""

    idempotency_key: str
    currency: str
    entries: tuple[EntryRequest, ...]
    kind: TransactionKind = TransactionKind.MANUAL
    campaign_id: int | None = None
    period: str | None = None
    pricing_run_id: int | None = None
    submission_id: int | None = None
    provider_id: int | None = None
    memo: str | None = None

    def validate(self) -> None:
        key = self.idempotency_key
        if not key or len(key) > MAX_KEY_CHARS:
            raise ValidationError(f"idempotency key {key!r} must be 1-{MAX_KEY_CHARS} characters")
        minor_digits(self.currency)
        if len(self.entries) < 2:
            raise ValidationError(f"transaction {key!r} has {len(self.entries)} entries; a posting needs at least 2")
        debits = credits = 0
        for e in self.entries:
            amt = e.amount_minor
            if isinstance(amt, bool) or not isinstance(amt, int) or amt <= 0 or amt > MAX_STORED_MINOR:
                raise ValidationError(
                    f"transaction {key!r}: entry on {e.account.code} has amount {amt!r}; amounts are positive "
                    f"integers of minor units up to {MAX_STORED_MINOR} (use the side, debit or credit, for direction)"
                )
            if e.account.currency != self.currency:
                raise ValidationError(
                    f"transaction {key!r}: account {e.account.code} is in {e.account.currency}, "
                    f"the transaction in {self.currency}; one currency per transaction"
                )
            if e.side is EntrySide.DEBIT:
                debits += amt
            else:
                credits += amt
        if debits != credits:
            raise ValidationError(
                f"transaction {key!r} does not balance: debits {debits} != credits {credits} minor units"
            )


@dataclass(frozen=True)
class EntryRequest:
    """One leg of a posting: ``amount_minor`` (> 0, minor units) on ``side`` of ``account``."""

    account: AccountRef
    side: EntrySide
    amount_minor: int


log = logging.getLogger(__name__)
MAX_KEY_CHARS = 200  # journal_transactions.idempotency_key is VARCHAR(200)


def canonical_body(req: TransactionRequest) -> str:
    """Sorted-key, whitespace-free JSON of the request (entries in a canonical order): what is hashed."""
    entries = sorted(
        (e.account.code, e.account.currency, e.account.kind.value, e.side.value, e.amount_minor) for e in req.entries
    )
    data = {
        "key": req.idempotency_key,
        "currency": req.currency,
        "kind": req.kind.value,
        "campaign_id": req.campaign_id,
        "period": req.period,
        "pricing_run_id": req.pricing_run_id,
        "submission_id": req.submission_id,
        "provider_id": req.provider_id,
        "memo": req.memo,
        "entries": [list(e) for e in entries],
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def seal_sha256(transaction_id: int, body_sha256: str, posted_at: dt.datetime) -> str:
    """The seal of a stored transaction row: what ``ledger verify`` checks the id and ``posted_at`` against
    (the canonical body covers every other column). Migration 0006 holds a copy for the rows it sealed."""
    stamp = posted_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return hashlib.sha256(f"{int(transaction_id)}|{body_sha256}|{stamp}".encode()).hexdigest()


def _sha256(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class PostResult:
    idempotency_key: str
    transaction_id: int
    created: bool


@dataclass
class _Prepared:
    req: TransactionRequest
    body: str
    sha: str
    result: PostResult | None = None


def _existing(session: Session, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        rows = session.execute(
            select(JournalTransaction.idempotency_key, JournalTransaction.id, JournalTransaction.body_sha256).where(
                JournalTransaction.idempotency_key.in_(chunk)
            )
        )
        out.update({k: (tid, sha) for k, tid, sha in rows})
    return out


def _resolve_existing(prepared: list[_Prepared], existing: dict[str, tuple[int, str]]) -> None:
    for p in prepared:
        if p.result is not None or p.req.idempotency_key not in existing:
            continue
        tid, sha = existing[p.req.idempotency_key]
        if sha != p.sha:
            raise ConflictError(
                f"idempotency key {p.req.idempotency_key!r} was already used for transaction {tid} with a different "
                "body; nothing was written. Use a new key for a different posting, or resend the original body"
            )
        p.result = PostResult(p.req.idempotency_key, tid, created=False)


def _reserve_ids(session: Session, n: int) -> list[int]:
    """Transaction ids reserved before the entries are written (the header is inserted last)."""
    if is_postgres(session):
        rows = session.execute(text("SELECT nextval('journal_transaction_ids') FROM generate_series(1, :n)"), {"n": n})
        return [int(r[0]) for r in rows]
    # SQLite: BEGIN IMMEDIATE holds the write lock for the whole unit of work, so max(id) is stable.
    start = int(session.execute(select(func.coalesce(func.max(JournalTransaction.id), 0))).scalar_one()) + 1
    return list(range(start, start + n))


def _write(session: Session, todo: list[_Prepared], account_ids: dict[AccountRef, int]) -> None:
    ids = _reserve_ids(session, len(todo))
    now = utcnow()
    entry_rows: list[dict[str, Any]] = []
    header_rows: list[dict[str, Any]] = []
    deltas: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for tid, p in zip(ids, todo, strict=True):
        r = p.req
        for e in r.entries:
            aid = account_ids[e.account]
            entry_rows.append(
                {"transaction_id": tid, "account_id": aid, "side": e.side, "amount_minor": e.amount_minor}
            )
            deltas[aid][0 if e.side is EntrySide.DEBIT else 1] += e.amount_minor
        header_rows.append({
            "id": tid, "idempotency_key": r.idempotency_key, "body_sha256": p.sha, "body": p.body, "kind": r.kind,
            "currency": r.currency, "campaign_id": r.campaign_id, "period": r.period,
            "pricing_run_id": r.pricing_run_id, "submission_id": r.submission_id, "provider_id": r.provider_id,
            "memo": r.memo, "posted_at": now, "seal_sha256": seal_sha256(tid, p.sha, now),
        })
        p.result = PostResult(r.idempotency_key, tid, created=True)
    if is_postgres(session):
        _insert_pg_json(session, entry_rows, header_rows)
    else:
        session.execute(insert(JournalEntry), entry_rows)
        session.execute(insert(JournalTransaction), header_rows)  # seals: the triggers check each balance
    table = cast(Table, LedgerAccount.__table__)
    session.execute(
        table.update()
        .where(table.c.id == bindparam("aid"))
        .values(
            debits_minor=table.c.debits_minor + bindparam("d"), credits_minor=table.c.credits_minor + bindparam("c")
        ),
        [{"aid": aid, "d": d, "c": c} for aid, (d, c) in sorted(deltas.items())],
    )


_PG_ENTRY_INSERT = text(
    "INSERT INTO journal_entries (transaction_id, account_id, side, amount_minor) "
    "SELECT x.transaction_id, x.account_id, x.side, x.amount_minor FROM json_to_recordset(CAST(:rows AS JSON)) "
    "AS x(transaction_id BIGINT, account_id BIGINT, side VARCHAR, amount_minor NUMERIC)"
)
_PG_HEADER_INSERT = text(
    "INSERT INTO journal_transactions (id, idempotency_key, body_sha256, body, kind, currency, campaign_id, period, "
    "pricing_run_id, submission_id, provider_id, memo, posted_at, seal_sha256) "
    "SELECT x.id, x.idempotency_key, x.body_sha256, x.body, x.kind, x.currency, x.campaign_id, x.period, "
    "x.pricing_run_id, x.submission_id, x.provider_id, x.memo, x.posted_at, x.seal_sha256 "
    "FROM json_to_recordset(CAST(:rows AS JSON)) AS x(id BIGINT, idempotency_key VARCHAR, body_sha256 VARCHAR, "
    "body TEXT, kind VARCHAR, currency VARCHAR, campaign_id BIGINT, period VARCHAR, pricing_run_id BIGINT, "
    "submission_id BIGINT, provider_id BIGINT, memo TEXT, posted_at TIMESTAMPTZ, seal_sha256 VARCHAR)"
)


def _insert_pg_json(session: Session, entries: list[dict[str, Any]], headers: list[dict[str, Any]]) -> None:
    """PostgreSQL: one ``INSERT ... SELECT FROM json_to_recordset`` per table (a single text parameter).

    Same rows as the executemany path, a few times faster: no per-row bind processing or array escaping.
    Entries first, then the headers that seal them (the statement-level seal trigger checks every
    header of the statement in one query). JSON numbers are exact, so amounts arrive as exact NUMERIC.
    """
    def plain(row: dict[str, Any]) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, enum.Enum) else v.isoformat() if isinstance(v, dt.datetime) else v)
                for k, v in row.items()}

    session.execute(_PG_ENTRY_INSERT, {"rows": json.dumps([plain(e) for e in entries])})
    session.execute(_PG_HEADER_INSERT, {"rows": json.dumps([plain(h) for h in headers])})


def post_transactions(session: Session, requests: Sequence[TransactionRequest]) -> list[PostResult]:
    """Post ``requests`` (in order) in the caller's unit of work; returns one result per request."""
    prepared: list[_Prepared] = []
    by_key: dict[str, _Prepared] = {}
    for req in requests:
        req.validate()
        body = canonical_body(req)
        p = _Prepared(req, body, _sha256(body))
        twin = by_key.get(req.idempotency_key)
        if twin is not None and twin.sha != p.sha:
            raise ConflictError(
                f"idempotency key {req.idempotency_key!r} appears twice in one batch with different bodies"
            )
        by_key.setdefault(req.idempotency_key, p)
        prepared.append(p)
    unique = list(by_key.values())
    if not unique:
        return []
    keys = [p.req.idempotency_key for p in unique]
    _resolve_existing(unique, _existing(session, keys))  # conflicts surface before any write
    todo = [p for p in unique if p.result is None]
    if todo:
        account_ids = ensure_accounts(session, (e.account for p in todo for e in p.req.entries))
        lock_accounts(session, account_ids.values())
        _resolve_existing(todo, _existing(session, [p.req.idempotency_key for p in todo]))
        todo = [p for p in todo if p.result is None]
        for attempt in (1, 2):
            if not todo:
                break
            try:
                with session.begin_nested():
                    _write(session, todo, account_ids)
                break
            except IntegrityError:
                # A concurrent poster won a key between our check and our insert: compare bodies.
                for p in todo:
                    p.result = None
                existing = _existing(session, [p.req.idempotency_key for p in todo])
                if attempt == 2 or not existing:
                    raise
                _resolve_existing(todo, existing)
                todo = [p for p in todo if p.result is None]
        n_new = sum(1 for p in unique if p.result is not None and p.result.created)
        log.debug("posted %d new transaction(s), %d replayed", n_new, len(unique) - n_new)
    results = [by_key[r.idempotency_key].result for r in requests]
    if any(r is None for r in results):
        raise AssertionError("internal error: a request was neither written nor matched")
    return cast(list[PostResult], results)
