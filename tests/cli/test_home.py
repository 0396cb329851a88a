"""MKT_HOME: resolved to an absolute path once; read-only commands never create a home, and say where
they looked when there is none; every command that uses the home states it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace import runtime
from marketplace.cli.app import app

runner = CliRunner()

READ_ONLY = [
    ["status"],
    ["ledger", "verify"],
    ["ledger", "balances"],
    ["campaign", "list"],
    ["campaign", "show", "demo-python-docs"],
    ["labels", "list"],
    ["registry", "list", "demo-python-docs"],
    ["report", "campaign", "demo-python-docs"],
    ["report", "provider", "foldoc-computing", "--period", "2025-01"],
    ["labels", "show", "1"],
]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without a home, MKT_HOME unset: the default ./.marketplace applies."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in ("MKT_HOME", "MKT_DATABASE_URL", "MKT_MLFLOW_TRACKING_URI", "MKT_MODELS_DIR", "MKT_ARTIFACTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    runtime.reset()
    yield folder
    runtime.reset()


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_never_create_a_home(elsewhere: Path, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = " ".join(result.output.split())  # rich wraps long lines
    assert f"no marketplace home at {elsewhere / '.marketplace'}" in message
    assert "MKT_HOME" in message and "default ./.marketplace" in message
    assert list(elsewhere.iterdir()) == []  # nothing created


def test_relative_home_is_resolved_once_and_status_states_it(tmp_path: Path, elsewhere: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKT_HOME", "rel-home")
    runtime.reset()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0  # a command that puts data in creates it
    monkeypatch.chdir(tmp_path)  # the settings were read: the home stays where it was resolved
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    store = json.loads(result.stdout)["store"]
    assert store["home"] == str(elsewhere / "rel-home") and store["home set"] == "set by MKT_HOME"
    assert not (tmp_path / "rel-home").exists()


def test_status_states_the_default_home(elsewhere: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    store = json.loads(result.stdout)["store"]
    assert store["home"] == str(elsewhere / ".marketplace") and "default ./.marketplace" in store["home set"]


def test_a_missing_database_named_by_url_is_an_error(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKT_DATABASE_URL", "sqlite:///nowhere/market.db")
    runtime.reset()
    result = runner.invoke(app, ["ledger", "verify"])
    assert result.exit_code == 2 and "MKT_DATABASE_URL" in result.output
    assert list(elsewhere.iterdir()) == []
