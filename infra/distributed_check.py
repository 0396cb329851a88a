"""The distributed path for real, without Docker: Prefect server + MLflow server + Dask cluster on PostgreSQL.

Starts on loopback, with free ports and fresh PostgreSQL databases (``mkt_<role>_<random>`` on
``--pg``, default ``postgresql://postgres@127.0.0.1:5432``):

* a Prefect server (``prefect server start``; its database is PostgreSQL via asyncpg),
* an MLflow tracking server (``mlflow server``; PostgreSQL backend via psycopg 3, proxied artifacts),
* a Dask ``distributed.LocalCluster`` of 2 worker processes (``MKT_TASK_RUNNER=dask``,
  ``MKT_DASK_ADDRESS`` = its scheduler),

* the ``revalue`` deployment, served by ``marketplace serve`` (a Prefect runner: the server's runs of it
  execute in its subprocesses),
* the HTTP API, ``marketplace api serve``, one more server process on the same database,

then drives one small campaign through the API: principals made with the CLI (``principals create``), the
buyer creates the campaign (a tiny target model in the models folder, the target data uploaded), a
provider uploads its files, the operator POSTs ``revalue`` (202 and a run id: a run of the Prefect
deployment, which ingests the other providers' inbox → labels → trains → scores → prices) and polls it until
it is done, the provider reads its statement, the buyer its report, and the operator verifies the ledger.
Then it checks the outcome (flow runs COMPLETED on the Prefect server, a model version on the MLflow server,
the ledger in PostgreSQL and ``ledger verify`` ok, tasks executed on the Dask workers), tears everything
down (even on failure) and prints a summary. Exit status 0 only if every check passed.

    python infra/distributed_check.py            # minutes: infra/README.md has measured durations
    python infra/distributed_check.py --keep     # keep the temp folder (logs) for inspection
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

REPO_ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("distributed_check")

# The expected flow runs of one revalue with an inbox: every stage is a subflow.
EXPECTED_FLOWS = ("revalue", "ingest", "label", "train", "score", "price")
CAMPAIGN = "distributed-check"
MODEL = "check-model"  # the target model's folder under the models folder, as the buyer names it
DEPLOYMENT = "revalue-check"  # served by `marketplace serve`; the API's revaluations run it
API_PROVIDER = "pydocs-press"  # uploads through the API; the corpus's first provider, so the order is kept
BUYER, OPERATOR = "check-buyer", "check-operator"
FINISHED = {"completed", "failed", "crashed", "cancelled"}  # run states GET /runs/{id} ends in


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


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness probe: ``url`` answers 200."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    probe.__doc__ = url
    return probe


@dataclass
class Server:
    """A server subprocess, in a process group of its own, and how to tell it is ready."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    ready: Callable[[], bool]


def launch(stack: contextlib.ExitStack, name: str, cmd: list[str], env: dict[str, str], log_path: Path,
           ready: Callable[[], bool]) -> Server:
    """Start ``cmd`` (output to ``log_path``); ``stack`` terminates its process group at exit (a Prefect
    runner's flow-run subprocesses included). Call :func:`wait_ready` before using it."""
    log.info("starting %s: %s", name, " ".join(cmd))
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                start_new_session=True)
    stack.callback(_stop, name, proc)
    return Server(name, proc, log_path, ready)


def _stop(name: str, proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the group start_new_session made: this process's own
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    log.info("%s stopped (exit %s)", name, proc.returncode)


def wait_ready(servers: list[Server], timeout_s: float) -> None:
    """Wait until every server is ready (they start in parallel); RuntimeError naming the log of one that
    exits or is not ready within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pending = list(servers)
    while pending:
        for server in list(pending):
            if server.ready():
                log.info("%s ready (%s)", server.name, server.ready.__doc__)
                pending.remove(server)
            elif server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.proc.returncode} before it was ready; see "
                                   f"{server.log_path}:\n{server.log_path.read_text(errors='replace')[-3000:]}")
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{pending[0].name} not ready ({pending[0].ready.__doc__}) after {timeout_s:.0f} s; "
                               f"see {pending[0].log_path}")
        if pending:
            time.sleep(0.5)


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


def deployment_ready(name: str) -> Callable[[], bool]:
    """A readiness probe: the Prefect server knows the deployment ``name`` ("flow/deployment")."""

    async def read() -> None:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            await client.read_deployment_by_name(name)

    def probe() -> bool:
        try:
            asyncio.run(read())
        except Exception:  # not registered yet (or the server is still starting)
            return False
        return True

    probe.__doc__ = f"deployment {name} on the Prefect server"
    return probe


async def _flow_run_deployment(run_id: str) -> str | None:
    """The name of the deployment a flow run belongs to (None: not a deployment run)."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_run = await client.read_flow_run(uuid.UUID(run_id))
        if flow_run.deployment_id is None:
            return None
        deployment = await client.read_deployment(flow_run.deployment_id)
        return str(deployment.name)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def drive_through_api(http: Any, tokens: dict[str, str], corpus: Path, uploads: Path, args: argparse.Namespace,
                      report: Report, logs: Path) -> None:
    """The campaign through the HTTP API, one named check per step (``http``: an ``httpx.Client`` on /api/v1)."""
    buyer, provider, operator = (_bearer(tokens[r]) for r in ("buyer", "provider", "operator"))

    def keep(step: str, response: Any) -> Any:
        (logs / f"api-{step}.json").write_text(response.text)
        return response.json() if response.headers.get("content-type", "").startswith("application/json") else None

    target = corpus / "target" / "target.jsonl"
    with target.open("rb") as fh:
        r = http.post("/campaigns", headers={**buyer, "Idempotency-Key": "check-campaign"},
                      data={"name": CAMPAIGN, "budget": "1000.00", "currency": "EUR", "target_model": MODEL,
                            "audit_threshold": str(args.audit_threshold)},
                      files={"target_data": (target.name, fh, "application/x-ndjson")})
    body = keep("campaign", r)
    report.add("api: buyer creates campaign", r.status_code == 201 and body["buyer"] == BUYER,
               f"{r.status_code}: {CAMPAIGN} (buyer {body.get('buyer') if body else '?'}, "
               f"{body.get('n_target_samples') if body else '?'} target samples, model {MODEL})")

    uploaded: list[int] = []
    results = []
    for path in sorted(p for p in uploads.iterdir() if p.is_file()):
        with path.open("rb") as fh:
            r = http.post("/submissions", headers={**provider, "Idempotency-Key": f"check-upload-{path.name}"},
                          files={"file": (path.name, fh, "application/octet-stream")})
        body = keep(f"upload-{path.name}", r)
        results.append((path.name, r.status_code, (body or {}).get("status"), (body or {}).get("accepted")))
        if r.status_code == 201 and body["status"] == "accepted":
            uploaded.append(int(body["submission_id"]))
    report.add("api: provider uploads", bool(results) and len(uploaded) == len(results),
               "; ".join(f"{name} {code} {status} ({accepted} accepted)" for name, code, status, accepted in results))

    started = time.perf_counter()
    r = http.post(f"/campaigns/{CAMPAIGN}/revalue", headers={**operator, "Idempotency-Key": "check-revalue"},
                  json={})
    run = keep("revalue", r) or {}
    run_id = str(run.get("run_id", ""))
    report.add("api: revalue accepted", r.status_code == 202 and run.get("kind") == "prefect" and bool(run_id),
               f"{r.status_code}: run {run_id or '?'} ({run.get('kind')}, {run.get('status')})")
    if r.status_code != 202:
        raise RuntimeError(f"POST revalue answered {r.status_code}: {r.text[:500]}")
    status = str(run.get("status"))
    deadline = time.monotonic() + args.revalue_timeout_s
    while status not in FINISHED and time.monotonic() < deadline:
        time.sleep(2)
        status = str(keep("run", http.get(f"/runs/{run_id}", headers=operator)).get("status"))
    deployment = asyncio.run(_flow_run_deployment(run_id))
    report.add("api: revalue deployment run", status == "completed" and deployment == DEPLOYMENT,
               f"{status} after {time.perf_counter() - started:.0f} s; Prefect flow run {run_id} of deployment "
               f"{deployment}")

    r = http.get("/statements/latest", headers=provider)
    st = keep("statement", r) or {}
    listed = {s["submission_id"] for s in st.get("submitted", [])}
    report.add("api: provider statement", r.status_code == 200 and set(uploaded) <= listed and bool(st.get("lines")),
               f"{r.status_code}: {st.get('provider_name')} {st.get('period')}, {len(st.get('lines', []))} "
               f"line(s), closing {st.get('closing_minor')} minor {st.get('currency')}, submissions "
               f"{sorted(listed)}")
    r = http.get(f"/campaigns/{CAMPAIGN}/report", headers=buyer)
    rep = keep("report", r) or {}
    report.add("api: buyer report", r.status_code == 200 and rep.get("allocated_minor", 0) > 0,
               f"{r.status_code}: allocated {rep.get('allocated_minor')} of {rep.get('budget_minor')} minor to "
               f"{len(rep.get('providers', []))} provider(s), model v{rep.get('model_version')}")
    r = http.get("/ledger/verify", headers=operator)
    verify = keep("ledger-verify", r) or {}
    report.add("api: ledger verify", r.status_code == 200 and verify.get("ok") is True,
               f"{r.status_code}: ok={verify.get('ok')}")


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
        mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
        wait_ready([
            launch(stack, "prefect server", [str(Path(sys.executable).parent / "prefect"), "server", "start",
                                             "--host", "127.0.0.1", "--port", str(prefect_port), "--no-ui"],
                   prefect_env, logs / "prefect-server.log", http_ok(f"http://127.0.0.1:{prefect_port}/api/health")),
            launch(stack, "mlflow server", [str(Path(sys.executable).parent / "mlflow"), "server", "--host",
                                            "127.0.0.1", "--port", str(mlflow_port), "--backend-store-uri",
                                            f"postgresql+psycopg://{pg_host}/{mlflow_db}", "--artifacts-destination",
                                            str(tmp / "mlflow-artifacts"), "--workers", "1"],
                   base_env, logs / "mlflow-server.log", http_ok(f"{mlflow_uri}/health")),
        ], args.start_timeout_s)

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
        from concurrent.futures import ThreadPoolExecutor

        from marketplace.valuation.demo_model import DemoModelConfig, build_demo_model

        corpus = tmp / "corpus"
        principals = (("buyer", BUYER), ("provider", API_PROVIDER), ("operator", OPERATOR))

        def create_principals() -> dict[str, str]:  # one after the other: the first creates the schema
            return {role: run_cli(["principals", "create", "--role", role, "--name", name], env, logs,
                                  f"principal-{role}", args.step_timeout_s)["token"] for role, name in principals}

        with ThreadPoolExecutor(max_workers=2) as pool:  # the corpus and the principals while the model trains
            building = pool.submit(run_cli, ["corpus", "build", str(corpus), "--small"], env, logs, "corpus",
                                   args.step_timeout_s)
            issuing = pool.submit(create_principals)
            build_demo_model(tmp / "mkt-home" / "models" / MODEL, DemoModelConfig(
                n_layer=2, d_model=64, n_head=2, vocab_size=2000, text_chars=200_000, train_steps=30, batch_size=8,
                seq_len=64, context=128, warmup_steps=5), seed=0)
            manifest, tokens = building.result(), issuing.result()
        report.timings_s["target model, corpus, principals"] = round(time.perf_counter() - t0, 1)
        log.info("corpus: %s records", manifest.get("total_records"))
        report.add("api: principals (cli)", all(t.startswith("mkt_") for t in tokens.values()),
                   ", ".join(f"{role} {name}" for role, name in principals) + ": one token each")

        t0 = time.perf_counter()
        uploads = tmp / "api-uploads"  # the API provider's files leave the inbox: they arrive through the API
        shutil.move(corpus / API_PROVIDER, uploads)
        deployments = tmp / "prefect-check.yaml"
        deployments.write_text(json.dumps({"deployments": [{
            "name": DEPLOYMENT, "entrypoint": "flows/revalue.py:revalue",
            "parameters": {"campaign": CAMPAIGN, "inbox": str(corpus), "n_labels": args.n_labels,
                           "promotion_floor": args.promotion_floor, "audit_n": args.audit_n,
                           "pricing_policy": {"screen": args.screen}}}]}))
        cli = [sys.executable, "-c", "from marketplace.cli.app import main; main()"]
        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        wait_ready([
            launch(stack, "revalue deployment (marketplace serve)", [*cli, "serve", "--file", str(deployments)],
                   {**env, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}, logs / "deployment-runner.log",
                   deployment_ready(f"revalue/{DEPLOYMENT}")),
            launch(stack, "api server", [*cli, "api", "serve", "--host", "127.0.0.1", "--port", str(api_port),
                                         "--revalue-deployment", f"revalue/{DEPLOYMENT}"],
                   env, logs / "api-server.log", http_ok(f"{api_url}/healthz")),
        ], args.start_timeout_s)
        report.timings_s["api: runner + api server start"] = round(time.perf_counter() - t0, 1)

        t0 = time.perf_counter()
        import httpx

        http = stack.enter_context(httpx.Client(base_url=f"{api_url}/api/v1", timeout=args.step_timeout_s))
        drive_through_api(http, tokens, corpus, uploads, args, report, logs)
        report.timings_s["api: campaign, upload, revalue run, reads"] = round(time.perf_counter() - t0, 1)

        # 1. Prefect: every stage recorded as a COMPLETED flow run on the server.
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

        # 2. MLflow: the approximator registered on the tracking server (PostgreSQL backend), and the version
        # the latest score run used (read from the market database: the run's summary stayed in the runner).
        import psycopg
        from mlflow.tracking import MlflowClient

        with psycopg.connect(f"{pg}/{market_db}") as conn:
            row = conn.execute(
                "SELECT v.model_name, v.version, v.metrics, s.resolved_from, s.audit FROM score_runs s "
                "JOIN approximator_versions v ON v.id = s.approximator_version_id ORDER BY s.id DESC LIMIT 1"
            ).fetchone()
        if row is None:
            raise RuntimeError("the revaluation left no score run in the market database")
        model_name, version, metrics, resolved_from, audit = row
        versions = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri).search_model_versions(
            f"name='{model_name}'")
        spearman = {k: round(float(v), 3) for k, v in (metrics or {}).items() if "spearman" in k}
        report.add("mlflow: model version", len(versions) >= 1 and str(version) in {str(v.version) for v in versions},
                   f"{model_name} versions {sorted(int(v.version) for v in versions)}, scored with v{version} "
                   f"({resolved_from}); {spearman or 'no spearman recorded'}")

        # 3. Ledger: in PostgreSQL, and `marketplace ledger verify` passes.
        with psycopg.connect(f"{pg}/{market_db}") as conn:
            n_entries = conn.execute("SELECT count(*) FROM journal_entries").fetchone()[0]  # type: ignore[index]
        verify = run_cli(["ledger", "verify"], env, logs, "ledger-verify", args.step_timeout_s)
        report.add("ledger: entries in postgres", n_entries > 0, f"{n_entries} journal entries in {market_db}")
        report.add("ledger: verify", bool(verify.get("ok")), f"ok={verify.get('ok')} stats={verify.get('stats')}")
        audit = audit or {}
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
    parser.add_argument("--screen", choices=["none", "finetune"], default="none",
                        help="Pricing's fine-tuning check. Tiny model: the check proves the plumbing, not the quality "
                             "(default: none, pay on the scores).")
    parser.add_argument("--start-timeout-s", type=float, default=120.0)
    parser.add_argument("--step-timeout-s", type=float, default=600.0)
    parser.add_argument("--revalue-timeout-s", type=float, default=900.0,
                        help="How long to poll the API's revaluation (the whole pipeline: ingest to price).")
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
