"""Ingestion throughput: records/s for a large JSONL of real text on SQLite and PostgreSQL.

    python benchmarks/ingest.py                      # 200k records, both engines
    python benchmarks/ingest.py --n 20000 --engines sqlite --out -

The file is built from real text: sentences of Python's own documentation
(``pydoc_data.topics``) and standard-library docstrings; each record joins 2-5 random sentences, so
hashes differ and lengths vary like real data. 2% of the records repeat an earlier record exactly,
and records that share sentences share words, so both duplicate paths are exercised (the result
column shows how many records each path linked).

Each configuration ingests the file into a fresh database (a new SQLite file, a new PostgreSQL
schema) in one transaction, commit included. Besides wall time, each ingest row shows CPU seconds:
``client`` is this process (all threads: reading, validation, MinHash, the driver), ``server`` the
PostgreSQL backend that served the ingest (read from ``/proc``, so only when the server runs on this
machine; ``-`` otherwise, and for SQLite, which runs inside the client). On a shared machine the wall
time follows the load; the CPU time much less. Baselines measured in the same run:

- ``read+validate only``: the reader/validator/normaliser alone (no database): the ceiling;
- ``naive ORM``: one ``Sample`` ORM object per record and one duplicate query per record, the
  obvious implementation, on a prefix of the file (it is too slow for the full size).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402  (only to pin threads: numpy/BLAS are not used here, but keep the run polite)
from sqlalchemy import select, text  # noqa: E402

from marketplace.db import Provider, Sample, Submission, SubmissionStatus, create_db_engine, make_session_factory  # noqa: E402
from marketplace.db.base import utcnow  # noqa: E402
from marketplace.db.migrate import upgrade  # noqa: E402
from marketplace.ingest import DedupParams, FieldMapping, IngestLimits, ingest_file  # noqa: E402
from marketplace.ingest.normalise import content_hash, normalise_text  # noqa: E402
from marketplace.ingest.params import MAX_METADATA_CHARS  # noqa: E402,F401
from marketplace.ingest.records import RecordStream  # noqa: E402
from marketplace.ingest.sources import open_source  # noqa: E402

torch.set_num_threads(1)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
_MODULES = ["collections", "os", "re", "json", "csv", "pathlib", "typing", "functools", "itertools", "argparse",
            "logging", "email", "decimal", "statistics", "datetime", "textwrap", "string", "difflib", "heapq",
            "zipfile", "tarfile", "shutil", "subprocess", "threading", "asyncio", "socket", "sqlite3", "unittest",
            "inspect", "ast", "pickle", "enum", "dataclasses", "contextlib", "random", "hashlib", "io", "time",
            "configparser", "queue", "traceback", "warnings", "types", "operator", "urllib.parse", "http.client"]


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def real_sentences() -> list[str]:
    from marketplace.corpus.sources.pydocs import pydoc_topics, stdlib_docstrings

    texts = [*pydoc_topics().values(), *stdlib_docstrings(tuple(_MODULES))]
    sentences = set()
    for t in texts:
        for s in re.split(r"(?<=[.!?])\s+", " ".join(t.split())):
            if 20 <= len(s) <= 400:
                sentences.add(s)
    return sorted(sentences)


def write_jsonl(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    pool = real_sentences()
    with path.open("w", encoding="utf-8") as fh:
        previous: list[str] = []
        for i in range(n):
            if previous and rng.random() < 0.02:
                text_ = rng.choice(previous)  # an exact repeat
            else:
                text_ = " ".join(rng.choice(pool) for _ in range(rng.randint(2, 5)))
            if len(previous) < 1000:
                previous.append(text_)
            fh.write(json.dumps({"text": text_, "source": "python-docs", "licence": "PSF-2.0", "id": i}) + "\n")


def fresh_database(engine_name: str, workdir: Path, pg_url: str) -> tuple[str, str | None]:
    if engine_name == "sqlite":
        return f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}", None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_db_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(pg_url: str, schema: str | None) -> None:
    if schema is None:
        return
    admin = create_db_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def _backend_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a local PostgreSQL backend, or None when /proc cannot tell."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_ingest(url: str, path: Path, near: bool, limits: IngestLimits
               ) -> tuple[float, dict[str, int], float, float | None]:
    """Seconds, counts, client CPU seconds and server CPU seconds (None if unknown) of one ingest."""
    engine = create_db_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as session, session.begin():
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one() if engine.dialect.name == "postgresql" \
            else None
        server0 = _backend_cpu_s(pid)
        cpu0, t0 = time.process_time(), time.perf_counter()
        report = ingest_file(session, path, "bench", limits=limits, dedup_params=DedupParams() if near else None)
    elapsed, client_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server1 = _backend_cpu_s(pid)
    server_cpu = server1 - server0 if server0 is not None and server1 is not None else None
    engine.dispose()
    return elapsed, {"accepted": report.n_accepted, "exact": report.n_exact_duplicates,
                     "near": report.n_near_duplicates, "quarantined": report.n_quarantined}, client_cpu, server_cpu


def run_read_only(path: Path, limits: IngestLimits) -> float:
    t0 = time.perf_counter()
    stream = RecordStream(open_source(path, None, limits), FieldMapping(), limits)
    for _ in stream.batches():
        pass
    stream.finish()
    return time.perf_counter() - t0


def run_naive(url: str, path: Path, n: int) -> float:
    """The obvious implementation: ORM objects, one duplicate query and one flush per record."""
    engine = create_db_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    t0 = time.perf_counter()
    with factory() as session, session.begin():
        provider = Provider(name="naive")
        session.add(provider)
        session.flush()
        sub = Submission(provider_id=provider.id, filename=path.name, format="jsonl", content_sha256="0" * 64,
                         byte_size=0, status=SubmissionStatus.ACCEPTED, field_mapping={})
        session.add(sub)
        session.flush()
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i >= n:
                    break
                rec = json.loads(line)
                norm = normalise_text(rec["text"])
                h = content_hash(norm)
                owner = session.execute(
                    select(Sample.id).where(Sample.content_hash == h, Sample.duplicate_of_id.is_(None))
                ).scalar_one_or_none()
                session.add(Sample(submission_id=sub.id, provider_id=provider.id, record_index=i, text=norm,
                                   content_hash=h, n_chars=len(norm), source=rec.get("source"),
                                   licence=rec.get("licence"), duplicate_of_id=owner,
                                   duplicate_kind="exact" if owner else None, created_at=utcnow()))
                session.flush()
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="records in the JSONL file")
    ap.add_argument("--naive-n", type=int, default=5_000, help="records for the naive ORM baseline")
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--pg-url", default=os.environ.get("MKT_TEST_POSTGRES_URL", DEFAULT_PG))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ingest.md"),
                    help="markdown file for the table ('-' for stdout only)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    limits = IngestLimits()
    with tempfile.TemporaryDirectory(prefix="mkt-bench-") as tmp:
        workdir = Path(tmp)
        data = workdir / "records.jsonl"
        t0 = time.perf_counter()
        write_jsonl(data, args.n)
        size_mb = data.stat().st_size / 1e6
        print(f"wrote {args.n} records ({size_mb:.1f} MB) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        digest = hashlib.sha256(data.read_bytes()).hexdigest()[:12]

        rows: list[tuple[str, str, int, float, str, str, str]] = []
        secs = run_read_only(data, limits)
        rows.append(("-", "read+validate only (no DB)", args.n, secs, "", "", load()))
        print(f"read only: {args.n / secs:,.0f} records/s", file=sys.stderr)
        for engine_name in [e.strip() for e in args.engines.split(",") if e.strip()]:
            url, schema = fresh_database(engine_name, workdir, args.pg_url)
            try:
                secs = run_naive(url, data, args.naive_n)
            finally:
                drop_schema(args.pg_url, schema)
            rows.append((engine_name, "naive ORM baseline (exact dups only)", args.naive_n, secs, "", "", load()))
            print(f"{engine_name} naive: {args.naive_n / secs:,.0f} records/s", file=sys.stderr)
            for near in (False, True):
                url, schema = fresh_database(engine_name, workdir, args.pg_url)
                try:
                    secs, counts, client_cpu, server_cpu = run_ingest(url, data, near, limits)
                finally:
                    drop_schema(args.pg_url, schema)
                label = "ingest_file, exact + near-duplicates" if near else "ingest_file, exact duplicates only"
                detail = ", ".join(f"{k} {v}" for k, v in counts.items())
                cpu = f"{client_cpu:.1f} + {server_cpu:.1f}" if server_cpu is not None else f"{client_cpu:.1f} + -"
                rows.append((engine_name, label, args.n, secs, detail, cpu, load()))
                print(f"{engine_name} {label}: {args.n / secs:,.0f} records/s ({detail}; CPU s {cpu})", file=sys.stderr)

    lines = [
        f"# Ingestion benchmark ({args.n} records, {size_mb:.1f} MB JSONL, data sha256 {digest}...)",
        "",
        f"Machine: {os.cpu_count()} CPUs visible; torch threads 1. Command: `python benchmarks/ingest.py "
        f"--n {args.n} --engines {args.engines}`.",
        "",
        f"The machine is shared: `load` is the 1-minute load average (on {os.cpu_count()} CPUs) when the row "
        "finished; above the CPU count, other processes were competing for the CPU during the measurement.",
        "`CPU s`: client (this process, all threads) + server (the PostgreSQL backend, when local) seconds.",
        "",
        "| engine | what | records | seconds | records/s | result | CPU s | load |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for engine_name, label, n, secs, detail, cpu, loadavg in rows:
        lines.append(f"| {engine_name} | {label} | {n} | {secs:.2f} | {n / secs:,.0f} | {detail} | {cpu} | {loadavg} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out != "-":
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
