"""Ledger posting throughput: entries per second, batched vs one transaction per commit (the baseline).

    python benchmarks/ledger.py [--transactions 4000] [--baseline-transactions 400] [--postgres-url URL]

Batched: ``post_transactions`` with ``--batch`` transactions per database transaction (executemany for
entries, headers and account totals; the seal and balance triggers run for every row). Baseline: the
same call with one transaction per commit. Each transaction has 2 entries (debit a campaign budget,
credit one of 50 provider payables). Goal: >= 5,000 entries/s batched on PostgreSQL.
Prints a Markdown table and writes it to benchmarks/results/ledger.md.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import EntrySide, create_db_engine, make_session_factory
from marketplace.db.migrate import upgrade
from marketplace.ledger import (
    EntryRequest,
    TransactionRequest,
    budget_account,
    payable_account,
    post_transactions,
    verify_ledger,
)

RESULTS = Path(__file__).with_name("results") / "ledger.md"
N_PROVIDERS = 50


def _requests(prefix: str, n: int) -> list[TransactionRequest]:
    budget = budget_account(1, "EUR")
    return [
        TransactionRequest(f"{prefix}:{i}", "EUR", (
            EntryRequest(budget, EntrySide.DEBIT, 100 + i % 7),
            EntryRequest(payable_account(1 + i % N_PROVIDERS, "EUR"), EntrySide.CREDIT, 100 + i % 7),
        ))
        for i in range(n)
    ]


def _seed(factory: sessionmaker[Session]) -> None:
    with factory() as s, s.begin():
        s.execute(text("INSERT INTO campaigns (id, name, target_model_path, target_model_digest, target_data_path, "
                       "target_data_digest, budget_minor, currency, audit_threshold, options, created_at) VALUES "
                       "(1, 'bench', 'm', 'd', 't', 'd', 1000000, 'EUR', 0.5, '{}', CURRENT_TIMESTAMP)"))
        s.execute(text("INSERT INTO providers (id, name, created_at) VALUES (:i, :n, CURRENT_TIMESTAMP)"),
                  [{"i": i, "n": f"p{i}"} for i in range(1, N_PROVIDERS + 1)])


def _time(factory: sessionmaker[Session], reqs: list[TransactionRequest], batch: int) -> float:
    start = time.perf_counter()
    for lo in range(0, len(reqs), batch):
        with factory() as s, s.begin():
            post_transactions(s, reqs[lo : lo + batch])
    return time.perf_counter() - start


def bench(url: str, engine_name: str, n: int, n_base: int, batch: int) -> list[tuple[str, str, int, float, float]]:
    engine = create_db_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    _seed(factory)
    _time(factory, _requests("warm", 50), 50)  # accounts created, caches warm
    base_s = _time(factory, _requests("one", n_base), 1)
    batch_s = _time(factory, _requests("batch", n), batch)
    with factory() as s:
        assert verify_ledger(s).ok
    engine.dispose()
    return [
        (engine_name, "one per commit (baseline)", 2 * n_base, base_s, 2 * n_base / base_s),
        (engine_name, f"batched ({batch} per commit)", 2 * n, batch_s, 2 * n / batch_s),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--transactions", type=int, default=4000)
    ap.add_argument("--baseline-transactions", type=int, default=400)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench(f"sqlite:///{tmp}/bench.db", "SQLite", args.transactions, args.baseline_transactions,
                      args.batch)
    if not args.no_postgres:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_db_engine(args.postgres_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.postgres_url else "?"
        try:
            rows += bench(f"{args.postgres_url}{sep}options=-csearch_path%3D{schema}", "PostgreSQL",
                          args.transactions, args.baseline_transactions, args.batch)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()

    lines = [
        "# Ledger posting throughput", "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}; "
        "2 entries per transaction; triggers (seal, balance, immutability) active.", "",
        "| engine | mode | entries | seconds | entries/s | speed-up vs baseline |",
        "|---|---|---:|---:|---:|---:|",
    ]
    base = {}
    for eng, mode, n_entries, secs, rate in rows:
        base.setdefault(eng, rate)
        lines.append(f"| {eng} | {mode} | {n_entries} | {secs:.2f} | {rate:,.0f} | {rate / base[eng]:.1f}x |")
    pg = [r for r in rows if r[0] == "PostgreSQL" and r[1].startswith("batched")]
    if pg:
        lines += ["", f"Goal: >= 5,000 entries/s batched on PostgreSQL: {'met' if pg[0][4] >= 5000 else 'NOT met'} "
                  f"({pg[0][4]:,.0f} entries/s)."]
    report = "\n".join(lines) + "\n"
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
