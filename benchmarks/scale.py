"""A market of N samples end to end on one machine: seconds, rate and peak memory per stage.

    python benchmarks/scale.py --n 100000
    python benchmarks/scale.py --n 1000000 --json                 # --encoder transformer: MiniLM itself
    python benchmarks/scale.py --n 100000 --database-url postgresql://postgres@127.0.0.1:5432/scale_bench \\
        --fresh-database
    python benchmarks/scale.py --combine a.json b.json c.json --out benchmarks/results/scale.md

What it does (nothing here reimplements the product: every stage runs the ``marketplace`` commands
themselves, in-process in one fresh child process per stage, with the same arguments a user would type):

setup (timed, not a stage): build or reuse the demo target model (``build_keyed_demo_model``, cached by
its inputs under ``--models-dir``, default ``~/.cache/llm-data-marketplace/models``); build or reuse the
N-record market (``scale_market.py``: real text of the project's corpora, ten providers with exact
copies, near copies, noise and bad records; cached under ``--cache-dir``); ``marketplace db upgrade``;
``marketplace campaign create`` (target: held-out Python documentation; audit threshold -1, so the
audit's result never stops the payout being measured).

stages: ``ingest`` (``marketplace ingest FOLDER --provider NAME`` per provider, originals first:
validation, exact and near-duplicate linking), ``label`` (``marketplace label --n``: exact LinFiK on a
subsample), ``train`` (``marketplace train --floor -1``, the encoder chosen by ``--encoder``: default
``static``, ``--encoder-kind static``, the fast one; ``transformer`` is MiniLM itself), ``score``
(``marketplace score``: every sample, texts in, scores stored, with the audit), ``price``
(``marketplace price --screen none --netting sample``: allocation, allocations stored, ledger postings;
``--screen finetune`` adds the fine-tuning check, whose cost is fine-tuning runs per provider, not per
sample; per-sample netting pays every positive score, so there are postings whatever the approximator
learned, where provider netting can pay nobody),
``report`` (``marketplace report campaign`` and ``marketplace report provider`` for every provider) and
``verify`` (``marketplace ledger verify``).

Per stage: wall seconds, a rate (items per second: ingest records read, label and train labels,
score samples scored, price/report/verify eligible samples priced) and the peak RSS of the stage's
process (``ru_maxrss`` from ``wait4``: the largest resident set of the process and of the child
processes it waited for; a largest single process, not a sum). Each stage runs in a fresh process, so
one stage's memory never counts against the next. Progress lines (stage starts, a heartbeat every 30 s
with the RSS and the rows written so far) go to stderr; the table to stdout; with ``--json`` the last
line of stdout is one JSON object::

    {"n": N, "encoder": ..., "scoring_samples_per_s": ...,
     "stages": {"ingest": {"seconds": ..., "rate_per_s": ..., "peak_rss_mb": ..., "items": ...}, ...}, ...}

The measurement is of cost, not quality: the campaign's audit threshold and the promotion floor are
set so that every stage runs whatever the approximator learned.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT

__all__ = ["main"]

CAMPAIGN = "scale-python-docs"
PERIOD = "2026-01"
BUDGET = "10000.00"
STAGES = ("ingest", "label", "train", "score", "price", "report", "verify")
ENCODERS = ("transformer", "static", "hashed")
HEARTBEAT_S = 30.0
DEFAULT_CACHE = Path.home() / ".cache" / "llm-data-marketplace"


def say(message: str) -> None:
    """A progress line on stderr."""
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# The child side: run ``marketplace`` commands in this process, one after the other.


def _run_cli_batch(batch_file: Path) -> int:
    """Run each argv of the batch through the ``marketplace`` app; write each command's exit code and
    its ``--json`` document (stdout) to the batch's ``out`` file. Stops at the first failure."""
    from marketplace.cli.app import app

    batch = json.loads(batch_file.read_text(encoding="utf-8"))
    results: list[dict[str, Any]] = []
    code = 0
    for argv in batch["commands"]:
        buf = io.StringIO()
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(buf):
                outcome = app(argv, prog_name="marketplace", standalone_mode=False)
            code = int(outcome) if isinstance(outcome, int) else 0
        except SystemExit as exc:  # typer.Exit / click's exit in standalone_mode=False
            code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
        except Exception as exc:  # reported to the parent, which stops the run
            code = getattr(exc, "exit_code", 1) or 1
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        text = buf.getvalue()
        results.append({"argv": argv, "exit_code": code, "seconds": time.perf_counter() - started,
                        "json": _last_json(text), "stdout_tail": text[-2000:] if code else ""})
        if code:
            break
    Path(batch["out"]).write_text(json.dumps(results), encoding="utf-8")
    return code


def _last_json(text: str) -> Any:
    """The JSON document a ``--json`` command printed (None when there is none)."""
    start = text.find("{") if text.lstrip().startswith("{") else text.find("\n{")
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except ValueError:
        return None


def _build_model(models_dir: str, seed: int, out: str) -> None:
    """Child: build or reuse the demo target model (the one ``marketplace demo`` builds) and say where."""
    from marketplace.valuation.demo_model import DemoModelConfig, build_keyed_demo_model

    model = build_keyed_demo_model(Path(models_dir), DemoModelConfig(), seed=seed)
    Path(out).write_text(json.dumps({"path": str(model.path), "cached": bool(model.cached)}), encoding="utf-8")


def _build_market(root: str, n: int, seed: int, out: str) -> None:
    """Child: build or reuse the market files."""
    import logging

    from scale_market import build_market

    logging.basicConfig(level=logging.INFO, format="[scale market] %(message)s")
    spec = build_market(Path(root), n, seed)
    Path(out).write_text(spec.to_json(), encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# The parent side.


@dataclass
class StageResult:
    seconds: float
    peak_rss_mb: float
    items: int
    rate_per_s: float
    detail: dict[str, Any] = field(default_factory=dict)


class Runner:
    """Starts the child processes of a run with the run's environment and measures them."""

    def __init__(self, env: dict[str, str], work: Path, database_url: str) -> None:
        self.env, self.work, self.database_url = env, work, database_url
        self._engine: Any = None

    def child(self, argv: list[str], what: str, count: str | None = None) -> tuple[float, float]:
        """Run ``python argv`` in a fresh process; returns (seconds, peak RSS in MB). Raises on failure."""
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *argv], env=self.env, cwd=ROOT, stdout=sys.stderr)
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(proc.pid, what, count, started, stop), daemon=True)
        beat.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            stop.set()
            beat.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if proc.returncode:
            raise SystemExit(f"{what} failed (exit code {proc.returncode}); its messages are above")
        return seconds, usage.ru_maxrss / 1024.0  # Linux: kilobytes

    def cli(self, commands: list[list[str]], what: str, count: str | None = None) -> tuple[float, float, list[Any]]:
        """Run ``marketplace`` commands in one fresh process; returns (seconds, peak MB, their JSON documents)."""
        batch = self.work / f"batch-{what}.json"
        out = self.work / f"batch-{what}.out.json"
        batch.write_text(json.dumps({"commands": commands, "out": str(out)}), encoding="utf-8")
        try:
            seconds, peak = self.child([str(Path(__file__)), "--cli-batch", str(batch)], what, count)
        finally:
            results = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else []
            for r in results:
                if r["exit_code"]:
                    say(f"`marketplace {' '.join(r['argv'])}` exited with {r['exit_code']}: {r['stdout_tail']}")
        return seconds, peak, [r["json"] for r in results]

    def _count(self, table: str) -> int | None:
        """Rows of ``table`` so far (a read-only count on its own connection), for the heartbeat."""
        try:
            from sqlalchemy import text

            from marketplace.db import create_db_engine

            if self._engine is None:
                self._engine = create_db_engine(self.database_url)
            with self._engine.connect() as conn:
                return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
        except Exception:  # a heartbeat never stops a run (tables appear with the schema)
            return None

    def _heartbeat(self, pid: int, what: str, count: str | None, started: float, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            rss, hwm = _proc_memory(pid)
            rows = self._count(count) if count else None
            say(f"{what}: {time.perf_counter() - started:,.0f} s, RSS {rss:,.0f} MB (peak {hwm:,.0f} MB)"
                + (f", {rows:,} {count} rows" if rows is not None else ""))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _proc_memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB, from /proc (0 when it is gone)."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in values:
                values[key] = int(line.split()[1]) / 1024.0
    return values["VmRSS"], values["VmHWM"]


def _train_args(encoder: str) -> list[str]:
    """``marketplace train`` arguments for ``--encoder``: a kind the product knows, or a Hugging Face folder."""
    if encoder == "transformer":
        return []
    if encoder in ENCODERS:
        import inspect

        from marketplace.cli.train_cmd import train

        if "encoder_kind" not in inspect.signature(train).parameters:
            raise SystemExit(f"--encoder {encoder}: this checkout's `marketplace train` has no --encoder-kind "
                             "option yet; use --encoder transformer")
        return ["--encoder-kind", encoder]
    if (Path(encoder) / "config.json").is_file():
        return ["--encoder", str(Path(encoder).resolve())]
    raise SystemExit(f"--encoder {encoder!r} is neither one of {', '.join(ENCODERS)} nor a Hugging Face "
                     "encoder folder (with config.json)")


def _fresh_postgres(url: str, create: bool) -> None:
    """CREATE (``create``) or DROP the database the URL names, through the server's ``postgres`` database.
    Creating refuses a database that exists: a run never touches a database it did not make."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = target.database
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"--fresh-database needs a plain database name in the URL, got {name!r}")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if create:
                if exists:
                    raise SystemExit(f"database {name} exists; --fresh-database only uses a database it creates "
                                     f"(drop it yourself, or pick another name)")
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            elif exists:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _checkout() -> dict[str, Any]:
    """The commit measured, and the tracked files changed on top of it (a clean run has none)."""
    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short=12", "HEAD"),
            "changed": git("status", "--porcelain", "--untracked-files=no").splitlines()}


def _machine() -> dict[str, Any]:
    from importlib.metadata import version

    load1, load5, load15 = os.getloadavg()
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
            "python": platform.python_version(), "torch": version("torch"),
            "load_before": [round(load1, 2), round(load5, 2), round(load15, 2)]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One measured run; returns the result document."""
    n = args.n
    cache = args.cache_dir.expanduser()
    models_dir = (args.models_dir or cache / "models").expanduser()
    home = (args.home or Path(tempfile.mkdtemp(prefix=f"mkt-scale-{n}-"))).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    work = home / "scale-run"
    work.mkdir(exist_ok=True)
    url = args.database_url or f"sqlite:///{home / 'marketplace.db'}"
    postgres = url.startswith("postgresql")
    train_args = _train_args(args.encoder)
    env = {**os.environ, "MKT_HOME": str(home), "MKT_DATABASE_URL": url, "MKT_MODELS_DIR": str(models_dir),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_HOME", None)
    doc: dict[str, Any] = {"n": n, "encoder": args.encoder, "engine": "postgresql" if postgres else "sqlite",
                           "machine": _machine(), "checkout": _checkout(), "home": str(home), "setup": {},
                           "stages": {}}
    say(f"N = {n:,} on {doc['engine']}, encoder {args.encoder}, home {home}")
    if postgres and args.fresh_database:
        _fresh_postgres(url, create=True)
    runner = Runner(env, work, url)
    try:
        _setup(runner, args, doc, cache, models_dir, home)
        _stages(runner, args, doc, train_args, home)
    finally:
        runner.close()
        if postgres and args.fresh_database and not args.keep:
            _fresh_postgres(url, create=False)
        if args.home is None and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    stages = doc["stages"]
    doc["scoring_samples_per_s"] = stages["score"]["rate_per_s"] if "score" in stages else None
    doc["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return doc


def _setup(runner: Runner, args: argparse.Namespace, doc: dict[str, Any], cache: Path, models_dir: Path,
           home: Path) -> None:
    say(f"setup: the demo target model (cached in {models_dir})")
    model_out = runner.work / "model.json"
    seconds, _ = runner.child([str(Path(__file__)), "--build-model", str(models_dir), str(args.seed),
                               str(model_out)], "model")
    model = json.loads(model_out.read_text(encoding="utf-8"))
    doc["setup"]["model"] = {"seconds": round(seconds, 1), **model}
    market_dir = (cache / "scale-markets" / f"n{args.n}-seed{args.seed}")
    say(f"setup: the {args.n:,}-record market (cached in {market_dir})")
    market_out = runner.work / "market.json"
    seconds, peak = runner.child([str(Path(__file__)), "--build-market", str(market_dir), str(args.n),
                                  str(args.seed), str(market_out)], "market")
    market = json.loads(market_out.read_text(encoding="utf-8"))
    doc["setup"]["market"] = {"seconds": round(seconds, 1), "peak_rss_mb": round(peak), "dir": str(market_dir),
                              "key": market["key"], "missing_sources": market["missing_sources"],
                              "providers": [{k: p[k] for k in ("name", "kind", "records", "bad", "repeats")}
                                            | {"files": len(p["files"])} for p in market["providers"]]}
    doc["_market"] = market
    say("setup: schema and campaign")
    create = [["campaign", "create", CAMPAIGN, "--target-model", model["path"], "--target-data",
               str(market_dir / market["target"]), "--budget", BUDGET, "--currency", "EUR", "--audit-threshold",
               "-1", "--json"]]
    seconds, _, _ = runner.cli([["db", "upgrade"], *(create if "ingest" in args.stages else [])], "campaign")
    doc["setup"]["campaign"] = {"seconds": round(seconds, 1)}


def _stage(doc: dict[str, Any], name: str, seconds: float, peak: float, items: int, **detail: Any) -> None:
    doc["stages"][name] = asdict(StageResult(round(seconds, 2), round(peak, 1), int(items),
                                             round(items / seconds, 1) if seconds > 0 else 0.0, detail))
    say(f"{name}: {seconds:,.1f} s, {items:,} items ({items / max(seconds, 1e-9):,.1f}/s), peak RSS {peak:,.0f} MB")


def _stages(runner: Runner, args: argparse.Namespace, doc: dict[str, Any], train_args: list[str],
            home: Path) -> None:
    market = doc.pop("_market")
    market_dir = Path(doc["setup"]["market"]["dir"])
    wanted = set(args.stages)

    if "ingest" in wanted:
        say(f"ingest: {len(market['providers'])} providers, {args.n:,} records")
        cmds = [["ingest", str(market_dir / p["name"]), "--provider", p["name"], "--json"]
                for p in market["providers"]]
        seconds, peak, docs = runner.cli(cmds, "ingest", count="samples")
        files = [f for d in docs for f in d["files"]]
        _stage(doc, "ingest", seconds, peak, sum(f.get("records", 0) for f in files),
               accepted=sum(f.get("accepted", 0) for f in files),
               quarantined=sum(f.get("quarantined", 0) for f in files),
               exact_duplicates=sum(f.get("exact_duplicates", 0) for f in files),
               near_duplicates=sum(f.get("near_duplicates", 0) for f in files),
               files=len(files), rejected=sum(d["n_rejected"] for d in docs))
    if "label" in wanted:
        say(f"label: {args.labels} exact LinFiK labels")
        seconds, peak, (label,) = runner.cli([["label", CAMPAIGN, "--n", str(args.labels), "--json"]], "label")
        _stage(doc, "label", seconds, peak, int(label.get("n_labeled", args.labels)))
    if "train" in wanted:
        say(f"train: encoder {args.encoder}")
        seconds, peak, (trained,) = runner.cli([["train", CAMPAIGN, "--floor", "-1", *train_args, "--json"]], "train")
        metrics = trained.get("metrics", {})
        n_labels = doc["stages"]["label"]["items"] if "label" in doc["stages"] else args.labels
        _stage(doc, "train", seconds, peak, n_labels, heldout_n=metrics.get("approx_n"),
               heldout_spearman=metrics.get("approx_spearman"), promoted=trained.get("promoted"))
    if "score" in wanted:
        say("score: every sample")
        seconds, peak, (scored,) = runner.cli([["score", CAMPAIGN, "--json"]], "score", count="scores")
        _stage(doc, "score", seconds, peak, int(scored["n_scored"]), n_embedded=scored.get("n_embedded"),
               audit=scored.get("audit", {}).get("spearman"))
    if "price" in wanted:
        say("price: allocate, store, post")
        seconds, peak, (priced,) = runner.cli([["price", CAMPAIGN, "--period", PERIOD, "--screen", args.screen,
                                                "--netting", args.netting, *args.price_args, "--json"]], "price",
                                              count="allocations")
        doc["n_eligible"] = int(priced["n_eligible"])
        _stage(doc, "price", seconds, peak, doc["n_eligible"], n_paid=priced["n_paid"],
               transactions=priced.get("transactions_posted"), allocated_minor=priced["allocated_minor"])
    eligible = int(doc.get("n_eligible", 0))
    if "report" in wanted:
        out = home / "reports"
        say("report: the buyer report, then a statement for every provider it shows paid")
        seconds, peak, (buyer,) = runner.cli(
            [["report", "campaign", CAMPAIGN, "--period", PERIOD, "--out", str(out), "--json"]], "report")
        # a provider with no posting in the period has no statement (the command says so and exits 3)
        names = [p["provider_name"] for p in buyer["providers"] if p["n_paid"] > 0]
        if names:
            more, peak2, _ = runner.cli([["report", "provider", name, "--period", PERIOD, "--out", str(out),
                                          "--json"] for name in names], "report")
            seconds, peak = seconds + more, max(peak, peak2)
        _stage(doc, "report", seconds, peak, eligible, statements=len(names))
    if "verify" in wanted:
        say("verify: every invariant of the books")
        seconds, peak, (verified,) = runner.cli([["ledger", "verify", "--json"]], "verify")
        _stage(doc, "verify", seconds, peak, eligible, ok=verified.get("ok"), stats=verified.get("stats"))


# --------------------------------------------------------------------------------------------------
# Tables.

_HEADER = ["stage", "seconds", "items", "rate (items/s)", "peak RSS (MB)"]


def table(doc: dict[str, Any]) -> list[str]:
    """The Markdown table of one run."""
    lines = [f"| {' | '.join(_HEADER)} |", "|---|---:|---:|---:|---:|"]
    for name, s in doc["stages"].items():
        lines.append(f"| {name} | {s['seconds']:,.1f} | {s['items']:,} | {s['rate_per_s']:,.1f} | "
                     f"{s['peak_rss_mb']:,.0f} |")
    return lines


def combine(docs: list[dict[str, Any]]) -> list[str]:
    """Every run's table, then the growth per stage between the two sizes of each engine (seconds at the
    larger N over seconds at the smaller, next to the ratio of the N)."""
    lines: list[str] = []
    for d in docs:
        m = d["machine"]
        lines += ["", f"### N = {d['n']:,}, {d['engine']}, encoder {d['encoder']}", "",
                  f"Commit {d['checkout']['commit']}{' with changes' if d['checkout']['changed'] else ''}. "
                  f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB, Python {m['python']}, torch "
                  f"{m['torch']}; load average before {m['load_before']}, after {m['load_after']}. "
                  f"Scoring end to end: {d['scoring_samples_per_s']:,.1f} samples/s. "
                  f"Eligible (paid-for) samples: {d.get('n_eligible', 0):,}.", "", *table(d)]
    by_engine: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for d in docs:
        by_engine.setdefault((d["engine"], d["encoder"]), []).append(d)
    for (engine, encoder), runs in by_engine.items():
        if len(runs) < 2:
            continue
        small, large = sorted(runs, key=lambda d: d["n"])[:: len(runs) - 1]
        lines += ["", f"### Growth {small['n']:,} → {large['n']:,} ({engine}, encoder {encoder}; N grew "
                      f"{large['n'] / small['n']:.0f}x)", "",
                  "| stage | seconds | seconds | growth | peak RSS (MB) | peak RSS (MB) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name in STAGES:
            a, b = small["stages"].get(name), large["stages"].get(name)
            if a and b:
                lines.append(f"| {name} | {a['seconds']:,.1f} | {b['seconds']:,.1f} | "
                             f"{b['seconds'] / max(a['seconds'], 1e-9):.1f}x | {a['peak_rss_mb']:,.0f} | "
                             f"{b['peak_rss_mb']:,.0f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, help="Records in the market (bad records and copies included).")
    ap.add_argument("--json", action="store_true", help="End stdout with one line of JSON.")
    ap.add_argument("--database-url", default=None, help="Default: a SQLite file in the home.")
    ap.add_argument("--fresh-database", action="store_true",
                    help="PostgreSQL: CREATE the URL's database first (refused if it exists) and DROP it after.")
    ap.add_argument("--home", type=Path, default=None, help="MKT_HOME of the run (default: a temporary folder, "
                    "removed after the run unless --keep).")
    ap.add_argument("--keep", action="store_true", help="Keep the temporary home and the fresh database.")
    ap.add_argument("--encoder", default="static",
                    help=f"{', '.join(ENCODERS)} (marketplace train --encoder-kind) or a Hugging Face encoder folder.")
    ap.add_argument("--models-dir", type=Path, default=None,
                    help="Cache of built target models (default CACHE_DIR/models).")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="Models and markets (default %(default)s).")
    ap.add_argument("--labels", type=int, default=400, help="Exact labels (default %(default)s).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--screen", default="none", choices=("none", "finetune"),
                    help="`marketplace price --screen`: the fine-tuning check costs fine-tuning runs per provider, "
                         "not per sample, so the default leaves it out of the scaling measurement.")
    ap.add_argument("--netting", default="sample", choices=("sample", "provider"),
                    help="`marketplace price --netting`: per sample (default here), so that samples are paid and "
                         "posted whatever the approximator learned (provider netting can pay nobody).")
    ap.add_argument("--price-args", nargs=argparse.REMAINDER, default=[],
                    help="Extra `marketplace price` arguments (last on the line).")
    ap.add_argument("--out", type=Path, default=None, help="Also write the result (JSON, or with --combine the "
                    "Markdown) here.")
    ap.add_argument("--combine", nargs="+", type=Path, default=None, help="Result JSON files to tabulate.")
    ap.add_argument("--cli-batch", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--build-model", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--build-market", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cli_batch:
        return _run_cli_batch(args.cli_batch)
    if args.build_model:
        _build_model(args.build_model[0], int(args.build_model[1]), args.build_model[2])
        return 0
    if args.build_market:
        _build_market(args.build_market[0], int(args.build_market[1]), int(args.build_market[2]),
                      args.build_market[3])
        return 0
    if args.combine:
        lines = combine([json.loads(p.read_text(encoding="utf-8")) for p in args.combine])
        print("\n".join(lines))
        if args.out:
            args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return 0
    if not args.n or args.n < 1000:
        ap.error("--n must be at least 1000 records")
    doc = run(args)
    print("\n".join(table(doc)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps({k: doc[k] for k in ("n", "encoder", "scoring_samples_per_s", "stages", "engine",
                                              "machine", "checkout", "n_eligible", "setup") if k in doc}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
