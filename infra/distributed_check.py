"""The distributed path for real, without Docker: Prefect server + MLflow server + Dask cluster on PostgreSQL.

Starts on loopback, with free ports and fresh PostgreSQL databases (``mkt_<role>_<random>`` on
``--pg``, default ``postgresql://postgres@127.0.0.1:5432``):

* a Prefect server (``prefect server start``; its database is PostgreSQL via asyncpg),
* an MLflow tracking server (``mlflow server``; PostgreSQL backend via psycopg 3, proxied artifacts),
* a Dask ``distributed.LocalCluster`` of 2 worker processes (``MKT_TASK_RUNNER=dask``,
  ``MKT_DASK_ADDRESS`` = its scheduler),

then runs a small campaign through them with the ``marketplace`` CLI (tiny target model → ``corpus
build --small`` → ``campaign create`` → ``revalue --inbox``), checks the outcome (flow runs COMPLETED on
the Prefect server, a model version on the MLflow server, the ledger in PostgreSQL and ``ledger verify``
ok, tasks executed on the Dask workers), tears everything down (even on failure) and prints a summary.
Exit status 0 only if every check passed.

    python infra/distributed_check.py            # ~2-3 minutes on 2 CPU cores
    python infra/distributed_check.py --keep     # keep the temp folder (logs) for inspection
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

REPO_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("distributed_check")

# The expected flow runs of one revalue with an inbox: every stage is a subflow.
EXPECTED_FLOWS = ("revalue", "ingest", "label", "train", "score", "price")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, bool(ok), detail))
        log.info("check %-28s %s  %s", name, "ok" if ok else "FAILED", detail)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def fresh_database(pg_url: str, role: str) -> Iterator[str]:
    """Create ``mkt_<role>_<random>`` on the server of ``pg_url``; drop it (forcing connections off) at exit."""
    import psycopg

    name = f"mkt_{role}_{secrets.token_hex(4)}"
    with psycopg.connect(f"{pg_url}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    log.info("created database %s", name)
    try:
        yield name
    finally:
        with psycopg.connect(f"{pg_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        log.info("dropped database %s", name)


@contextlib.contextmanager
def server_process(name: str, cmd: list[str], env: dict[str, str], log_path: Path, health_url: str,
                   timeout_s: float) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` (output to ``log_path``), wait until ``health_url`` answers 200, terminate it at exit."""
    log.info("starting %s: %s", name, " ".join(cmd))
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} before it was healthy; "
                                   f"see {log_path}:\n{log_path.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(health_url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not healthy at {health_url} after {timeout_s:.0f} s; see {log_path}")
            time.sleep(0.5)
        log.info("%s healthy at %s", name, health_url)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.info("%s stopped (exit %s)", name, proc.returncode)


def run_cli(args: list[str], env: dict[str, str], log_dir: Path, step: str, timeout_s: float) -> Any:
    """``marketplace ARGS --json`` in a subprocess; returns the parsed JSON document (raises on failure)."""
    cmd = [sys.executable, "-c", "from marketplace.cli.app import main; main()", *args, "--json"]
    log.info("marketplace %s", " ".join(args))
    proc = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, timeout=timeout_s, check=False)
    (log_dir / f"{step}.stderr.log").write_bytes(proc.stderr)
    (log_dir / f"{step}.stdout.json").write_bytes(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f"marketplace {' '.join(args)} exited with {proc.returncode}:\n"
                           f"{proc.stderr.decode(errors='replace')[-4000:]}")
    # The document is the first JSON value on stdout (MLflow's fluent API prints "View run at ..." lines
    # after it when the tracking URI is an HTTP server).
    lines = proc.stdout.decode().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(("{", "["))), 0)
    return json.JSONDecoder().raw_decode("".join(lines[start:]))[0]


class TaskCounter(SchedulerPlugin):
    """Scheduler plugin: counts tasks that finished (processing → memory) per key prefix and per worker."""

    name = "mkt-task-counter"

    def __init__(self) -> None:
        super().__init__()
        self.by_prefix: Counter[str] = Counter()
        self.by_worker: Counter[str] = Counter()

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if start == "processing" and finish == "memory":
            from dask.utils import key_split

            self.by_prefix[key_split(key)] += 1
            self.by_worker[str(kwargs.get("worker", "?"))] += 1


def _scheduler_counts(dask_scheduler: Any) -> dict[str, dict[str, int]]:
    plugin = dask_scheduler.plugins.get(TaskCounter.name)
    return {"by_prefix": dict(plugin.by_prefix), "by_worker": dict(plugin.by_worker)} if plugin else {}


def _install_counter(dask_scheduler: Any) -> None:
    dask_scheduler.add_plugin(TaskCounter(), name=TaskCounter.name)


async def _read_flow_runs() -> list[tuple[str, str, str]]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        runs = await client.read_flow_runs(limit=200)
        names = {f.id: f.name for f in await client.read_flows(limit=200)}
        return [(names.get(r.flow_id, "?"), r.name, r.state.type.value if r.state else "?") for r in runs]


async def _count_task_runs() -> Counter[str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        counts: Counter[str] = Counter()
        offset = 0
        while True:
            batch = await client.read_task_runs(limit=200, offset=offset)
            if not batch:
                return counts
            for t in batch:
                state = t.state.type.value if t.state else "?"
                counts[f"{t.task_key.split('-')[0] if t.task_key else t.name}:{state}"] += 1
            offset += len(batch)


def run_check(args: argparse.Namespace, tmp: Path, report: Report) -> None:
    pg = args.pg.rstrip("/")
    pg_host = pg.split("://", 1)[1]
    logs = tmp / "logs"
    logs.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        prefect_db = stack.enter_context(fresh_database(pg, "prefect"))
        mlflow_db = stack.enter_context(fresh_database(pg, "mlflow"))
        market_db = stack.enter_context(fresh_database(pg, "market"))

        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MKT_", "MLFLOW_"))}
        base_env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                         "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                         "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))})

        t0 = time.perf_counter()
        prefect_port, mlflow_port = free_port(), free_port()
        prefect_env = {**base_env, "PREFECT_HOME": str(tmp / "prefect-home"),
                       "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{pg_host}/{prefect_db}",
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
                       "PREFECT_SERVER_UI_ENABLED": "false"}
        stack.enter_context(server_process(
            "prefect server", [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
                               "127.0.0.1", "--port", str(prefect_port), "--no-ui"],
            prefect_env, logs / "prefect-server.log", f"http://127.0.0.1:{prefect_port}/api/health",
            args.start_timeout_s))
        mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
        stack.enter_context(server_process(
            "mlflow server", [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port",
                              str(mlflow_port), "--backend-store-uri", f"postgresql+psycopg://{pg_host}/{mlflow_db}",
                              "--artifacts-destination", str(tmp / "mlflow-artifacts"), "--workers", "1"],
            base_env, logs / "mlflow-server.log", f"{mlflow_uri}/health", args.start_timeout_s))

        # Everything below (this process, the Dask worker processes it spawns, the CLI subprocesses)
        # talks to these servers: set the environment before the cluster starts its workers.
        run_env = {"MKT_HOME": str(tmp / "mkt-home"),
                   "MKT_DATABASE_URL": f"postgresql+psycopg://{pg_host}/{market_db}",
                   "MKT_MLFLOW_TRACKING_URI": mlflow_uri,
                   "PREFECT_API_URL": f"http://127.0.0.1:{prefect_port}/api",
                   "PREFECT_HOME": str(tmp / "prefect-client-home"),
                   "MKT_TASK_RUNNER": "dask", "MKT_MAX_WORKERS": "2"}
        os.environ.update({**base_env, **run_env})

        from distributed import Client, LocalCluster

        cluster = stack.enter_context(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                   dashboard_address=None, host="127.0.0.1"))
        dask_client = stack.enter_context(Client(cluster))
        dask_client.run_on_scheduler(_install_counter)
        os.environ["MKT_DASK_ADDRESS"] = cluster.scheduler_address
        env = {**os.environ}
        report.timings_s["start services"] = round(time.perf_counter() - t0, 1)
        log.info("dask scheduler at %s, workers %s", cluster.scheduler_address, list(cluster.workers))

        t0 = time.perf_counter()
        from marketplace.valuation.demo_model import DemoModelConfig, build_demo_model

        model = build_demo_model(tmp / "model", DemoModelConfig(
            n_layer=2, d_model=64, n_head=2, vocab_size=2000, text_chars=200_000, train_steps=30, batch_size=8,
            seq_len=64, context=128, warmup_steps=5), seed=0)
        report.timings_s["target model"] = round(time.perf_counter() - t0, 1)

        t0 = time.perf_counter()
        corpus = tmp / "corpus"
        manifest = run_cli(["corpus", "build", str(corpus), "--small"], env, logs, "corpus", args.step_timeout_s)
        report.timings_s["corpus build"] = round(time.perf_counter() - t0, 1)
        log.info("corpus: %s records", manifest.get("total_records"))

        t0 = time.perf_counter()
        campaign = "distributed-check"
        run_cli(["campaign", "create", campaign, "--target-model", model.path, "--target-data",
                 str(corpus / "target" / "target.jsonl"), "--budget", "1000.00",
                 "--audit-threshold", str(args.audit_threshold)], env, logs, "campaign", args.step_timeout_s)
        summary = run_cli(["revalue", campaign, "--inbox", str(corpus), "--n-labels", str(args.n_labels),
                           "--promotion-floor", str(args.promotion_floor), "--audit-n", str(args.audit_n)],
                          env, logs, "revalue", args.step_timeout_s)
        report.timings_s["campaign + revalue"] = round(time.perf_counter() - t0, 1)
        (logs / "revalue-summary.json").write_text(json.dumps(summary, indent=2, default=str))

        # 1. Prefect: every stage recorded as a COMPLETED flow run on the server.
        import asyncio

        runs = asyncio.run(_read_flow_runs())
        states: dict[str, list[str]] = {}
        for flow_name, _, state in runs:
            states.setdefault(flow_name, []).append(state)
        for flow_name in EXPECTED_FLOWS:
            got = states.get(flow_name, [])
            report.add(f"prefect: {flow_name} flow run", bool(got) and all(s == "COMPLETED" for s in got),
                       f"{len(got)} run(s): {sorted(set(got)) or 'none'}")
        task_counts = asyncio.run(_count_task_runs())
        n_task_runs = sum(task_counts.values())
        n_done = sum(n for k, n in task_counts.items() if k.endswith(":COMPLETED"))
        report.add("prefect: task runs", n_task_runs > 0 and n_done == n_task_runs,
                   f"{n_done}/{n_task_runs} COMPLETED")

        # 2. MLflow: the approximator registered on the tracking server (PostgreSQL backend).
        from mlflow.tracking import MlflowClient

        train = summary.get("train") or {}
        model_name = summary["score"]["model_name"]
        versions = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri).search_model_versions(
            f"name='{model_name}'")
        report.add("mlflow: model version", len(versions) >= 1 and str(summary["score"]["version"]) in
                   {str(v.version) for v in versions},
                   f"{model_name} versions {sorted(int(v.version) for v in versions)}, scored with "
                   f"v{summary['score']['version']} ({summary['score']['resolved_from']}); "
                   f"held-out spearman {train.get('decision', {}).get('candidate_spearman', '?')}")

        # 3. Ledger: in PostgreSQL, and `marketplace ledger verify` passes.
        import psycopg

        with psycopg.connect(f"{pg}/{market_db}") as conn:
            n_entries = conn.execute("SELECT count(*) FROM journal_entries").fetchone()[0]  # type: ignore[index]
        verify = run_cli(["ledger", "verify"], env, logs, "ledger-verify", args.step_timeout_s)
        report.add("ledger: entries in postgres", n_entries > 0, f"{n_entries} journal entries in {market_db}")
        report.add("ledger: verify", bool(verify.get("ok")), f"ok={verify.get('ok')} stats={verify.get('stats')}")
        audit = summary["score"].get("audit") or {}
        report.add("score: audit passed", audit.get("passed") is True,
                   f"spearman {audit.get('spearman', '?')} vs threshold {args.audit_threshold} on "
                   f"{audit.get('n', '?')} samples")

        # 4. Dask: the label and score shards ran on the cluster's worker processes.
        counts = dask_client.run_on_scheduler(_scheduler_counts)
        by_prefix, by_worker = counts.get("by_prefix", {}), counts.get("by_worker", {})
        n_dask = sum(by_prefix.values())
        report.add("dask: tasks executed", n_dask > 0,
                   f"{n_dask} tasks; by key {dict(sorted(by_prefix.items()))}")
        report.add("dask: both workers used", len([w for w, n in by_worker.items() if n > 0]) >= 2,
                   f"per worker {dict(sorted(by_worker.items()))}")


def print_summary(report: Report) -> None:
    width = max((len(c.name) for c in report.checks), default=10)
    print(f"\n{'check':<{width}}  result  detail")
    print(f"{'-' * width}  ------  ------")
    for c in report.checks:
        print(f"{c.name:<{width}}  {'ok' if c.ok else 'FAILED':<6}  {c.detail}")
    for stage, seconds in report.timings_s.items():
        print(f"{'time: ' + stage:<{width}}  {seconds:>5.1f}s")
    print(f"\ndistributed check: {'PASSED' if report.ok else 'FAILED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (no database); fresh databases are created and dropped on it.")
    parser.add_argument("--n-labels", type=int, default=200)
    parser.add_argument("--audit-n", type=int, default=20)
    parser.add_argument("--promotion-floor", type=float, default=-1.0,
                        help="Tiny model: the check proves the plumbing, not the quality (default: always promote).")
    parser.add_argument("--audit-threshold", type=float, default=-1.0,
                        help="Tiny model: the check proves the plumbing, not the quality (default: always pay).")
    parser.add_argument("--start-timeout-s", type=float, default=120.0)
    parser.add_argument("--step-timeout-s", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="Keep the temp folder (logs, artifacts).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(1)

    tmp = Path(tempfile.mkdtemp(prefix="mkt-distributed-"))
    report = Report()
    started = time.perf_counter()
    try:
        run_check(args, tmp, report)
    except Exception as exc:  # any failure is reported as a failed check, after teardown
        log.exception("distributed check failed")
        report.add("run", False, f"{type(exc).__name__}: {str(exc)[:500]}")
    finally:
        report.timings_s["total"] = round(time.perf_counter() - started, 1)
        if args.keep or not report.ok:
            log.info("temp folder kept: %s (logs in %s)", tmp, tmp / "logs")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_summary(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
