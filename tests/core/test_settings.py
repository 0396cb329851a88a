"""Settings: environment prefix, defaults under MKT_HOME, and infra/.env.example kept complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from marketplace.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_live_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKT_HOME", str(tmp_path / "h"))
    s = Settings()
    assert s.home == (tmp_path / "h").resolve()
    assert s.resolved_database_url == f"sqlite:///{s.home / 'marketplace.db'}"
    assert s.resolved_mlflow_tracking_uri.startswith("sqlite:///")
    assert s.resolved_artifacts_dir == s.home / "artifacts"


def test_environment_overrides_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKT_MAX_QUARANTINE_FRACTION", "0.05")
    monkeypatch.setenv("MKT_TASK_RUNNER", "dask")
    s = Settings()
    assert s.max_quarantine_fraction == 0.05
    assert s.task_runner == "dask"
    monkeypatch.setenv("MKT_TASK_RUNNER", "spark")
    with pytest.raises(ValueError, match="task_runner"):
        Settings()


def test_env_example_lists_every_setting() -> None:
    text = (ROOT / "infra" / ".env.example").read_text(encoding="utf-8")
    # Settings whose default is computed from MKT_HOME appear commented out ("# MKT_X=").
    pattern = re.compile(r"^(?:# )?(MKT_[A-Z0-9_]+)=", re.MULTILINE)
    listed = set(pattern.findall(text))
    expected = {f"MKT_{name.upper()}" for name in Settings.model_fields}
    assert expected - listed == set(), f"missing from infra/.env.example: {sorted(expected - listed)}"
    assert listed - expected == set(), f"unknown settings in infra/.env.example: {sorted(listed - expected)}"


def test_home_is_absolute_once_and_says_how_it_was_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MKT_HOME", raising=False)
    default = Settings()
    assert default.home == tmp_path / ".marketplace" and "default ./.marketplace" in default.home_origin
    monkeypatch.setenv("MKT_HOME", "rel")
    chosen = Settings()
    monkeypatch.chdir("/")
    assert chosen.home == tmp_path / "rel" and chosen.home_origin == "set by MKT_HOME"
    assert not default.home.exists() and not chosen.home.exists()  # reading settings creates nothing
