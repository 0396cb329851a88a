"""Revaluation runs started through the API, and the status of a campaign's runs.

``POST /campaigns/{name}/revalue`` hands the work to a :class:`RevalueLauncher` given to the app when it
is created, because the core (this package) never imports Prefect or the flows:

- :class:`BackgroundRevalue` (the default) runs ``marketplace revalue CAMPAIGN --json`` as a subprocess, one
  at a time, in a worker thread of the server; the run's state lives in the server's memory (a restart
  forgets it; the pricing runs it made stay in the database);
- ``marketplace api serve`` passes a launcher that starts the ``revalue`` Prefect deployment instead when
  ``PREFECT_API_URL`` names a server (marketplace/cli/api_cmd.py).

:func:`campaign_runs` lists what the database records of a campaign's label sets, score runs and pricing
runs, newest first.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.db import LabelSet, PricingRun, ScoreRun, utcnow

__all__ = ["BackgroundRevalue", "RevalueLauncher", "RunState", "campaign_runs", "revalue_command"]

RUN_LIMIT = 20  # runs of each kind shown per campaign


@dataclass(frozen=True)
class RunState:
    """One revaluation started through the API. ``status``: queued, running, completed or failed."""

    run_id: str
    kind: str  # background | prefect
    campaign_id: int
    campaign: str
    period: str | None
    status: str
    requested_by: str
    requested_at: dt.datetime
    finished_at: dt.datetime | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["requested_at"] = self.requested_at.isoformat()
        out["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return out


class RevalueLauncher(Protocol):
    """Starts revaluations and reports their state."""

    kind: str

    def start(self, campaign_id: int, campaign: str, *, period: str | None, force: bool,
              actor: str) -> RunState: ...

    def get(self, run_id: str) -> RunState | None: ...

    def for_campaign(self, campaign_id: int) -> list[RunState]: ...


def revalue_command(campaign_ref: str, period: str | None, force: bool) -> list[str]:
    """``marketplace revalue CAMPAIGN --json`` with this interpreter (nothing needs to be on PATH)."""
    cmd = [sys.executable, "-c", "from marketplace.cli.app import main; main()", "revalue", campaign_ref, "--json"]
    if period:
        cmd += ["--period", period]
    if force:
        cmd.append("--force")
    return cmd


class BackgroundRevalue:
    """Revaluations as subprocesses, one at a time, on a worker thread of this process.

    ``env``: the subprocess's whole environment (None: the server's own, so the run uses the same settings
    and store; the CLI edge passes one that names the server's store explicitly); ``command``: builds the
    command line (tests give a stand-in)."""

    kind = "background"

    def __init__(self, env: Mapping[str, str] | None = None,
                 command: Callable[[str, str | None, bool], Sequence[str]] = revalue_command,
                 timeout_s: float = 24 * 3600.0) -> None:
        self._env = dict(env) if env is not None else None
        self._command = command
        self._timeout_s = timeout_s
        self._runs: dict[str, RunState] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="revalue")

    def _set(self, run_id: str, **changes: Any) -> None:
        with self._lock:
            self._runs[run_id] = replace(self._runs[run_id], **changes)

    def _run(self, run_id: str, campaign_ref: str, period: str | None, force: bool) -> None:
        self._set(run_id, status="running")
        try:
            done = subprocess.run(list(self._command(campaign_ref, period, force)), capture_output=True, text=True,
                                  env=self._env, timeout=self._timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._set(run_id, status="failed", finished_at=utcnow(), error=str(exc).splitlines()[0][:500])
            return
        if done.returncode == 0:
            try:
                summary = json.loads(done.stdout) if done.stdout.strip() else {}
            except json.JSONDecodeError:
                summary = {"output": done.stdout[-2000:]}
            self._set(run_id, status="completed", finished_at=utcnow(), summary=summary)
        else:
            lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
            self._set(run_id, status="failed", finished_at=utcnow(),
                      error=(lines[-1] if lines else f"exit code {done.returncode}")[:500])

    def start(self, campaign_id: int, campaign: str, *, period: str | None, force: bool,
              actor: str) -> RunState:
        run_id = uuid.uuid4().hex
        state = RunState(run_id, self.kind, campaign_id, campaign, period, "queued", actor, utcnow())
        with self._lock:
            self._runs[run_id] = state
        self._pool.submit(self._run, run_id, f"id:{campaign_id}", period, force)
        return state

    def get(self, run_id: str) -> RunState | None:
        with self._lock:
            return self._runs.get(run_id)

    def for_campaign(self, campaign_id: int) -> list[RunState]:
        with self._lock:
            runs = [r for r in self._runs.values() if r.campaign_id == campaign_id]
        return sorted(runs, key=lambda r: r.requested_at, reverse=True)

    def wait(self, timeout: float | None = None) -> None:
        """Block until every submitted run has finished (tests, shutdown)."""
        self._pool.submit(lambda: None).result(timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _when(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def campaign_runs(session: Session, campaign_id: int, limit: int = RUN_LIMIT) -> dict[str, list[dict[str, Any]]]:
    """The campaign's label sets, score runs and pricing runs (newest first, ``limit`` of each)."""
    label_sets = session.scalars(select(LabelSet).where(LabelSet.campaign_id == campaign_id)
                                 .order_by(LabelSet.id.desc()).limit(limit))
    score_runs = session.scalars(select(ScoreRun).where(ScoreRun.campaign_id == campaign_id)
                                 .order_by(ScoreRun.id.desc()).limit(limit))
    pricing_runs = session.scalars(select(PricingRun).where(PricingRun.campaign_id == campaign_id)
                                   .order_by(PricingRun.id.desc()).limit(limit))
    return {
        "label_sets": [{"id": ls.id, "status": ls.status.value, "n_requested": ls.n_requested,
                        "n_labeled": ls.n_labeled, "created_at": _when(ls.created_at)} for ls in label_sets],
        "score_runs": [{"id": sr.id, "status": sr.status.value, "n_scored": sr.n_scored,
                        "audit_passed": (sr.audit or {}).get("passed"), "created_at": _when(sr.created_at),
                        "finished_at": _when(sr.finished_at)} for sr in score_runs],
        "pricing_runs": [{"id": pr.id, "status": pr.status.value, "period": pr.period, "currency": pr.currency,
                          "budget_minor": pr.budget_minor, "allocated_minor": pr.allocated_minor,
                          "n_paid": pr.n_paid, "created_at": _when(pr.created_at),
                          "finished_at": _when(pr.finished_at)}
                         for pr in pricing_runs],
    }
