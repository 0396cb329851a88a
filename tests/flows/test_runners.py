"""MKT_TASK_RUNNER / MKT_MAX_WORKERS / MKT_DEVICE reach every path that runs the label and score flows:
the flows' own defaults (what a served or work-pool deployment runs), the revalue flow's subflows,
``marketplace revalue``, and the tasks that resolve a device left unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from prefect.task_runners import ThreadPoolTaskRunner
from typer.testing import CliRunner

from flows.runners import build_task_runner, with_configured_runner
from marketplace import runtime
from marketplace.errors import ConfigError
from marketplace.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """MKT_MAX_WORKERS=3 and MKT_DEVICE=cuda:1 on a machine that (pretends to) have CUDA."""
    monkeypatch.setenv("MKT_MAX_WORKERS", "3")
    monkeypatch.setenv("MKT_DEVICE", "cuda:1")
    monkeypatch.setenv("MKT_TASK_RUNNER", "thread")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    runtime.reset()
    yield monkeypatch
    runtime.reset()


def test_build_task_runner_from_settings_and_overrides() -> None:
    thread = build_task_runner(Settings(max_workers=3))
    assert isinstance(thread, ThreadPoolTaskRunner) and thread._max_workers == 3
    assert build_task_runner(Settings(max_workers=3), max_workers=5)._max_workers == 5  # type: ignore[attr-defined]
    dask = build_task_runner(Settings(task_runner="dask", dask_address="tcp://scheduler:8786"))
    assert type(dask).__name__ == "DaskTaskRunner" and dask.address == "tcp://scheduler:8786"  # type: ignore[attr-defined]
    local = build_task_runner(Settings(max_workers=3), kind="dask")
    assert local.cluster_kwargs["n_workers"] == 3  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="MKT_TASK_RUNNER"):
        build_task_runner(Settings(), kind="spark")


def test_deployed_flows_default_to_the_settings() -> None:
    """A deployment run (served or by a worker) imports the flow in a fresh process: its default task runner
    is the settings' there (the label flow used a fixed 2 threads, the score flow Prefect's default)."""
    code = ("import json, inspect; from flows.label import label; from flows.score import score; "
            "print(json.dumps({f.name: [f.task_runner._max_workers, inspect.signature(f.fn).parameters['device']"
            ".default] for f in (label, score)}))")
    env = {**os.environ, "MKT_MAX_WORKERS": "3", "MKT_TASK_RUNNER": "thread", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"label": [3, None], "score": [3, None]}


class _FakeFlow:
    """Records the task runner it was given and the parameters it was called with."""

    def __init__(self, result: dict[str, Any], calls: list[tuple[str, Any, dict[str, Any]]], name: str) -> None:
        self.result, self.calls, self.name = result, calls, name
        self.runner: Any = None

    def with_options(self, task_runner: Any) -> _FakeFlow:
        clone = _FakeFlow(self.result, self.calls, self.name)
        clone.runner = task_runner
        return clone

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((self.name, self.runner, {"args": args, **kwargs}))
        return self.result


def test_revalue_runs_label_and_score_on_the_configured_runner(settings_env: pytest.MonkeyPatch) -> None:
    """With the thread runner the revalue flow used to run its subflows on their fixed defaults."""
    import flows.revalue as module

    calls: list[tuple[str, Any, dict[str, Any]]] = []
    monkeypatch = settings_env
    monkeypatch.setattr(module, "plan_revaluation_task", lambda *a: {"relabel": True, "retrain": False,
                                                                       "latest_label_set_id": 1, "reason": "test"})
    monkeypatch.setattr(module, "label", _FakeFlow({"label_set_id": 7}, calls, "label"))
    monkeypatch.setattr(module, "score", _FakeFlow({"score_run_id": 9}, calls, "score"))
    monkeypatch.setattr(module, "price", _FakeFlow({}, calls, "price"))
    summary = module.revalue.fn("camp", period="2026-11")
    assert summary["label"] == {"label_set_id": 7}
    runs = {name: (runner, params) for name, runner, params in calls}
    for name in ("label", "score"):
        runner, params = runs[name]
        assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3, name
        assert params["device"] is None, name  # resolved to MKT_DEVICE where the tasks run


def test_cli_revalue_uses_mkt_device(settings_env: pytest.MonkeyPatch, mkt_home: Path) -> None:
    """``marketplace revalue`` without --device ran on "cpu" whatever MKT_DEVICE said."""
    import flows.revalue as module
    from marketplace.cli.app import app

    calls: list[tuple[str, Any, dict[str, Any]]] = []
    settings_env.setattr(module, "revalue", _FakeFlow(
        {"campaign": "c", "period": "2026-11", "plan": {"reason": "test"},
         "score": {"version": "1", "n_scored": 0}, "price": {}}, calls, "revalue"))
    result = CliRunner().invoke(app, ["revalue", "c", "--json"])
    assert result.exit_code == 0, result.output
    assert calls[0][2]["device"] == "cuda:1"


def test_tasks_resolve_an_unset_device_to_mkt_device(settings_env: pytest.MonkeyPatch) -> None:
    """The flows' device defaults to None (MKT_DEVICE); each task resolves it where it runs."""
    import tasks.label as module

    seen: list[str] = []

    def compute_target_shards(plan: Any, index: int, *, device: str, batch_size: int) -> list[Any]:
        seen.append(device)
        return []

    settings_env.setattr(module, "read_plan", lambda run_dir: run_dir)
    settings_env.setattr(module, "compute_target_shards", compute_target_shards)
    module.compute_target_gradients_task.fn("run-dir", 0, None, 4)
    module.compute_target_gradients_task.fn("run-dir", 0, "cpu", 4)
    assert seen == ["cuda:1", "cpu"]


def test_with_configured_runner_reads_the_settings_at_call_time(settings_env: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any, dict[str, Any]]] = []
    flow = with_configured_runner(_FakeFlow({}, calls, "x"))
    assert isinstance(flow.runner, ThreadPoolTaskRunner) and flow.runner._max_workers == 3
