"""HTTP API throughput and latency against the same work done in-process (the baseline), in one run.

    python benchmarks/api.py                          # SQLite under a temporary MKT_HOME, 5 s per cell
    python benchmarks/api.py --seconds 10 --clients 1 4 16
    python benchmarks/api.py --postgres postgresql://postgres@127.0.0.1:5432/test --out results.md

Two workloads, each with 1, 4 and 16 concurrent clients (threads, one ``httpx.Client`` with keep-alive each):

- ``statement``: ``GET /api/v1/statements/{period}`` (JSON) by a paid provider;
- ``upload``: ``POST /api/v1/submissions`` with a 20-record JSONL of real text, a distinct file every time
  (distinct records too), so each request is a real ingestion with duplicate detection.

The server is ``marketplace api serve`` (uvicorn, one process) started as a subprocess on a free loopback
port. The baseline runs the same core calls in this process with the same number of threads, without HTTP,
authentication or multipart: ``build_provider_statement`` and its JSON encoding; ``ingest_one_file`` of the
same kind of file written to a temporary folder. Both modes share the database; they alternate per cell.

The market is small and priced: three providers ingested with ``ingest_one_file`` (200 records each),
a campaign made by ``create_campaign`` on a stand-in model folder (the campaign is never labeled, so no
model is loaded), one score run, priced with ``run_pricing``. The score run's rows (a label set, an
approximator version, scores) are written by the test suite's builder ``tests/support/catalog.py:
make_score_run``, because training an approximator would take minutes and is not what is measured.

Prints a Markdown table and writes it to benchmarks/results/api.md (``--out -``: print only); ``--json``
also prints the measured cells as JSON. Client and server share the machine's cores: the HTTP numbers
include the clients' own CPU time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from _common import ROOT, publish_report

from marketplace.settings import Settings, get_settings

RESULTS = ROOT / "benchmarks" / "results" / "api.md"
PERIOD = "2026-11"
PROVIDERS = ("acme", "globex", "initech")
STATEMENT_READER = "acme"
RECORDS_PER_UPLOAD = 20
RECORDS_PER_PROVIDER = 200


# --- real text --------------------------------------------------------------------------------------------

def real_sentences() -> list[str]:
    """Sentences of Python's own documentation (``pydoc_data.topics``), 20-400 characters."""
    from marketplace.corpus.sources.pydocs import pydoc_topics

    found: set[str] = set()
    for text in pydoc_topics().values():
        for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            if 20 <= len(s) <= 400:
                found.add(s)
    return sorted(found)


class Payloads:
    """Distinct JSONL files of ``RECORDS_PER_UPLOAD`` records, each record 2-4 random sentences (thread-safe)."""

    def __init__(self, sentences: list[str], seed: int) -> None:
        self._sentences = sentences
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._serial = itertools.count()

    def next(self) -> tuple[str, bytes]:
        with self._lock:
            n = next(self._serial)
            texts = [" ".join(self._rng.sample(self._sentences, self._rng.randint(2, 4)))
                     for _ in range(RECORDS_PER_UPLOAD)]
        body = "".join(json.dumps({"text": t, "id": f"{n}-{i}"}) + "\n" for i, t in enumerate(texts))
        return f"part-{n:06d}.jsonl", body.encode("utf-8")


# --- the market -------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Market:
    settings: Settings
    reader_token: str
    uploader_tokens: list[str]
    uploader_names: list[str]


def build_market(settings: Settings, sentences: list[str], n_uploaders: int) -> Market:
    """Providers, a campaign, a score run and a priced period; principals with tokens (see the docstring)."""
    from sqlalchemy import select

    from marketplace import runtime
    from marketplace.campaigns import create_campaign
    from marketplace.db import Sample
    from marketplace.ingest import IngestOptions, ingest_one_file, read_normalised_records
    from marketplace.money import Money
    from marketplace.pricing import PricingPolicy
    from marketplace.pricing.runner import run_pricing
    from marketplace.principals import create_principal
    from marketplace.valuation import digest_model_dir
    from tests.support.catalog import make_score_run

    settings.ensure_home()
    factory = runtime.session_factory(settings)
    limits, dedup = runtime.ingest_parameters(settings=settings)
    options = IngestOptions(limits=limits, dedup_params=dedup)
    payloads = Payloads(sentences, seed=1)
    work = Path(tempfile.mkdtemp(prefix="mkt-api-bench-market-"))
    try:
        for provider in PROVIDERS:
            path = work / f"{provider}.jsonl"
            path.write_bytes(b"".join(payloads.next()[1] for _ in range(RECORDS_PER_PROVIDER // RECORDS_PER_UPLOAD)))
            result = ingest_one_file(factory, path, provider, options, actor="benchmark")
            assert result.status == "accepted", result
        model = settings.resolved_models_dir / "stand-in-model"
        model.mkdir(parents=True, exist_ok=True)
        (model / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
        (model / "model.safetensors").write_bytes(os.urandom(1024))
        target = work / "target.jsonl"
        target.write_bytes(payloads.next()[1])
        with factory() as s, s.begin():
            campaign = create_campaign(
                s, name="api-bench", target_model_path=str(model), target_model_digest=digest_model_dir(model),
                target_data_path=str(target), target_records=read_normalised_records(target, limits=limits),
                budget=Money(500_000, "EUR"), audit_threshold=-1.0, actor="benchmark", buyer="bench-buyer")
            rng = random.Random(2)
            scores = {sid: rng.random() for sid in s.scalars(select(Sample.id))}
            make_score_run(s, campaign, scores)
            campaign_id = campaign.id
        # priced on the scores alone: the fine-tuning check would need a real target model
        run_pricing(factory, campaign_id, PERIOD, PricingPolicy(fee_bps=0, screen="none"))
        with factory() as s, s.begin():
            reader = create_principal(s, "provider", STATEMENT_READER).token
            names = [f"uploader-{i:02d}" for i in range(n_uploaders)]
            uploaders = [create_principal(s, "provider", n).token for n in names]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Market(settings, reader, uploaders, names)


# --- the server -------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def api_server(settings: Settings, log_path: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """``marketplace api serve`` on a free loopback port; yields its base URL; terminated at exit."""
    port = free_port()
    env = {**os.environ, "MKT_HOME": str(settings.home), "MKT_DATABASE_URL": settings.resolved_database_url,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-c", "from marketplace.cli.app import main; main()", "api", "serve", "--host",
           "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"api serve exited with {proc.returncode}; see {log_path}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"api serve not healthy after {timeout_s:.0f} s; see {log_path}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# --- measurement ------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Cell:
    workload: str
    mode: str  # http | in-process
    clients: int
    seconds: float
    n_ok: int
    n_errors: int
    p50_ms: float
    p99_ms: float
    first_error: str | None

    @property
    def per_s(self) -> float:
        return self.n_ok / self.seconds if self.seconds else 0.0


def _percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, round(q * (len(sorted_ms) - 1)))]


Request = Callable[[int], None]  # one request by client i; raises on an unexpected answer


def measure(workload: str, mode: str, clients: int, seconds: float, make_client: Callable[[int], Request],
            warmup: int = 2) -> Cell:
    """``clients`` threads, each sending requests back to back for ``seconds`` (after ``warmup`` unrecorded
    requests each); latency per request in ms."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def worker(i: int) -> None:
        send = make_client(i)
        for _ in range(warmup):
            with contextlib.suppress(Exception):
                send(i)
        start.wait()
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                send(i)
            except Exception as exc:  # counted, not raised: the table shows them
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            latencies[i].append((time.perf_counter() - t0) * 1000.0)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.perf_counter() - t0  # the last requests in flight finish after the stop: counted
    all_ms = sorted(ms for per in latencies for ms in per)
    return Cell(workload, mode, clients, elapsed, len(all_ms), len(errors), _percentile(all_ms, 0.5),
                _percentile(all_ms, 0.99), errors[0] if errors else None)


def http_clients(base: str, market: Market, payloads: Payloads) -> dict[str, Callable[[int], Request]]:
    """Per workload: a factory of per-thread request functions over HTTP."""

    def statement(i: int) -> Request:
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {market.reader_token}"},
                              timeout=120)

        def send(_: int) -> None:
            r = client.get(f"/api/v1/statements/{PERIOD}")
            if r.status_code != 200:
                raise RuntimeError(f"{r.status_code} {r.text[:200]}")
            r.json()

        return send

    def upload(i: int) -> Request:
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {market.uploader_tokens[i]}"},
                              timeout=120)

        def send(_: int) -> None:
            name, body = payloads.next()
            r = client.post("/api/v1/submissions", files={"file": (name, body, "application/x-ndjson")})
            if r.status_code != 201 or r.json()["status"] != "accepted":
                raise RuntimeError(f"{r.status_code} {r.text[:200]}")

        return send

    return {"statement": statement, "upload": upload}


def in_process_clients(market: Market, payloads: Payloads, folder: Path) -> dict[str, Callable[[int], Request]]:
    """Per workload: the same core calls as the routes, in this process (no HTTP, no authentication)."""
    from fastapi.encoders import jsonable_encoder

    from marketplace import runtime
    from marketplace.db import Provider
    from marketplace.db.lookup import find_by_name_or_id
    from marketplace.ingest import IngestOptions, ingest_one_file
    from marketplace.reports.statements import build_provider_statement, require_postings

    factory = runtime.session_factory(market.settings)
    limits, dedup = runtime.ingest_parameters(settings=market.settings)
    options = IngestOptions(limits=limits, dedup_params=dedup)

    def statement(i: int) -> Request:
        def send(_: int) -> None:
            with factory() as session:
                prov = find_by_name_or_id(session, Provider, STATEMENT_READER)
                assert prov is not None
                require_postings(session, prov.id, PERIOD)
                st = build_provider_statement(session, prov.id, PERIOD)
                json.dumps(jsonable_encoder(dataclasses.asdict(st)))

        return send

    def upload(i: int) -> Request:
        def send(_: int) -> None:
            name, body = payloads.next()
            path = folder / name
            path.write_bytes(body)
            try:
                result = ingest_one_file(factory, path, market.uploader_names[i], options, actor="benchmark")
            finally:
                path.unlink(missing_ok=True)
            if result.status != "accepted":
                raise RuntimeError(f"{result.status}: {result.message}")

        return send

    return {"statement": statement, "upload": upload}


# --- report -----------------------------------------------------------------------------------------------

def _fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x != x else f"{x:,.{digits}f}"


def report(cells: list[Cell], args: argparse.Namespace, engine: str, load: tuple[str, str], wall_s: float,
           market_s: float) -> list[str]:
    by_key = {(c.workload, c.clients, c.mode): c for c in cells}
    cpu = platform.processor() or platform.machine()
    lines = [
        "# HTTP API: requests/s and latency against the same work in-process",
        "",
        f"Command: `python benchmarks/api.py --seconds {args.seconds:g} --clients "
        f"{' '.join(str(c) for c in args.clients)}{' --postgres URL' if args.postgres else ''}` "
        f"({dt.date.today().isoformat()}).",
        f"Machine: {os.cpu_count()} CPU cores ({cpu}), {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, load average {load[0]} before and {load[1]} after; database: {engine}.",
        f"Each cell ran for {args.seconds:g} s after 2 unrecorded requests per client; the whole run took "
        f"{wall_s:.0f} s ({market_s:.0f} s of it building the market). Server: `marketplace api serve` (uvicorn, "
        "one process); clients: threads with one keep-alive `httpx.Client` each, on the same cores as the server.",
        "",
        "| workload | clients | HTTP req/s | HTTP p50 ms | HTTP p99 ms | in-process req/s | in-process p50 ms "
        "| in-process p99 ms | HTTP / in-process | errors (HTTP / in-process) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in args.workloads:
        for clients in args.clients:
            h, b = by_key[(workload, clients, "http")], by_key[(workload, clients, "in-process")]
            ratio = h.per_s / b.per_s if b.per_s else float("nan")
            lines.append(f"| {workload} | {clients} | {_fmt(h.per_s)} | {_fmt(h.p50_ms)} | {_fmt(h.p99_ms)} | "
                         f"{_fmt(b.per_s)} | {_fmt(b.p50_ms)} | {_fmt(b.p99_ms)} | {_fmt(ratio, 2)} | "
                         f"{h.n_errors} / {b.n_errors} |")
    lines += [
        "",
        f"`statement`: `GET /api/v1/statements/{PERIOD}` (JSON) of a provider with {RECORDS_PER_PROVIDER} priced "
        "samples; in-process: `build_provider_statement` and its JSON encoding. `upload`: `POST /api/v1/submissions` "
        f"of a distinct {RECORDS_PER_UPLOAD}-record JSONL (real text, a new file and new records every time), one "
        "provider per client; in-process: `ingest_one_file` of the same kind of file. The market: "
        f"{len(PROVIDERS)} providers of {RECORDS_PER_PROVIDER} records, one campaign, one priced period "
        "(benchmarks/api.py's docstring).",
        "",
        "Reading the ratio: below 1 is what HTTP adds to the same work (the token's hash looked up and its "
        "last use recorded, routing, multipart parsing and the upload's temporary file, JSON over a socket). "
        "Above 1 with several clients does not mean HTTP is free: the server is a second process, so its work "
        "and the clients' own run on both cores, while the in-process threads share one interpreter lock. "
        "Latency tails at 4 and 16 clients are mostly queueing for the cores (and, past 15 concurrent requests, "
        "for the database pool's 15 connections).",
    ]
    errors = [c for c in cells if c.first_error]
    if errors:
        lines += ["", "First error per cell with errors:", ""]
        lines += [f"- {c.workload}, {c.clients} clients, {c.mode}: {c.first_error}" for c in errors]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="Measured seconds per cell (default 5).")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="Concurrent clients per cell.")
    ap.add_argument("--workloads", nargs="+", default=["statement", "upload"], choices=["statement", "upload"])
    ap.add_argument("--postgres", default=None, metavar="URL",
                    help="Run on this PostgreSQL database, in a fresh schema dropped afterwards (default: SQLite "
                         "in the temporary MKT_HOME).")
    ap.add_argument("--out", default=str(RESULTS), help="Result file ('-': print only).")
    ap.add_argument("--json", action="store_true", help="Also print the cells as JSON.")
    ap.add_argument("--keep", action="store_true", help="Keep the temporary MKT_HOME (server log inside).")
    args = ap.parse_args()
    if min(args.clients) < 1 or args.seconds <= 0:
        sys.exit("--clients must be >= 1 and --seconds > 0")

    started = time.perf_counter()
    load_before = f"{os.getloadavg()[0]:.1f}"
    home = Path(tempfile.mkdtemp(prefix="mkt-api-bench-"))
    schema = None
    try:
        overrides: dict[str, Any] = {}
        if args.postgres:
            from tests.support.databases import make_fresh_postgres_url

            overrides["database_url"], schema = make_fresh_postgres_url(args.postgres)
        settings = get_settings(home=home / "home", **overrides)
        engine = settings.resolved_database_url.split(":", 1)[0].split("+")[0]
        sentences = real_sentences()
        t0 = time.perf_counter()
        market = build_market(settings, sentences, max(args.clients))
        market_s = time.perf_counter() - t0
        payloads = Payloads(sentences, seed=7)
        cells: list[Cell] = []
        with api_server(settings, home / "api-serve.log") as base:
            modes = {"http": http_clients(base, market, payloads),
                     "in-process": in_process_clients(market, payloads, home)}
            for n, (workload, clients) in enumerate(itertools.product(args.workloads, args.clients)):
                order = ["http", "in-process"] if n % 2 == 0 else ["in-process", "http"]
                for mode in order:
                    cell = measure(workload, mode, clients, args.seconds, modes[mode][workload])
                    print(f"{workload:9s} {mode:10s} {clients:3d} clients: {cell.per_s:8.1f} req/s, p50 "
                          f"{cell.p50_ms:7.1f} ms, p99 {cell.p99_ms:7.1f} ms, {cell.n_errors} errors",
                          file=sys.stderr)
                    cells.append(cell)
        lines = report(cells, args, engine, (load_before, f"{os.getloadavg()[0]:.1f}"),
                       time.perf_counter() - started, market_s)
        if args.out == "-":
            print("\n".join(lines))
        else:
            publish_report(lines, Path(args.out))
        if args.json:
            print(json.dumps([{**dataclasses.asdict(c), "per_s": c.per_s} for c in cells], indent=2))
    finally:
        if schema is not None:
            from marketplace import runtime
            from tests.support.databases import drop_postgres_schema

            runtime.reset()
            drop_postgres_schema(args.postgres, schema)
        if args.keep:
            print(f"kept {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
