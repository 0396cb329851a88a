"""The shared edge (marketplace.runtime): offline switches, settings cache, one engine per URL, the
session factory, the model registry, the device, the ingestion parameters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import inspect

from marketplace import runtime
from marketplace.errors import ConfigError
from marketplace.settings import Settings


@pytest.fixture
def fresh_runtime() -> Iterator[None]:
    runtime.reset()
    yield
    runtime.reset()


def test_offline_env_sets_defaults_and_keeps_the_users() -> None:
    env = {"HF_HUB_OFFLINE": "0"}
    runtime.apply_offline_env(env)
    assert env["HF_HUB_OFFLINE"] == "0" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert set(runtime.OFFLINE_ENV) <= set(env)


def test_settings_are_read_once_until_reset(fresh_runtime: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKT_MAX_WORKERS", "3")
    first = runtime.current_settings()
    monkeypatch.setenv("MKT_MAX_WORKERS", "5")
    assert runtime.current_settings() is first and first.max_workers == 3
    runtime.reset()
    assert runtime.current_settings().max_workers == 5


def test_one_engine_per_url_schema_upgraded_once(fresh_runtime: None, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    bare = runtime.engine_for(url, upgrade=False)
    assert "samples" not in inspect(bare).get_table_names()
    engine = runtime.engine_for(url)
    assert engine is bare and "samples" in inspect(engine).get_table_names()
    assert runtime.engine_for(url) is engine
    assert runtime.engine_for(f"sqlite:///{tmp_path / 'b.db'}") is not engine


def test_session_factory_creates_the_home(fresh_runtime: None, tmp_path: Path) -> None:
    cfg = Settings(home=tmp_path / "home")
    factory = runtime.session_factory(cfg)
    assert cfg.resolved_artifacts_dir.is_dir() and cfg.resolved_models_dir.is_dir()
    with factory() as session:
        assert str(session.get_bind().engine.url) == cfg.resolved_database_url


def test_model_registry_artifact_root_only_for_local_stores(tmp_path: Path) -> None:
    local = runtime.model_registry(Settings(home=tmp_path))
    assert local.tracking_uri.startswith("sqlite:///") and local.artifact_root == (tmp_path / "mlruns").as_uri()
    server = runtime.model_registry(Settings(home=tmp_path, mlflow_tracking_uri="http://mlflow:5000"))
    assert server.artifact_root is None


@pytest.mark.parametrize(("requested", "configured", "cuda", "expected"), [
    (None, "cpu", False, "cpu"),
    (None, "auto", True, "cuda"),  # nothing requested: MKT_DEVICE
    (None, "cuda:1", True, "cuda:1"),
    ("auto", "cuda", False, "cpu"),  # a request wins over MKT_DEVICE
    ("cpu", "cuda", True, "cpu"),
    ("cuda", "cpu", True, "cuda"),
])
def test_resolve_device(monkeypatch: pytest.MonkeyPatch, requested: str | None, configured: str, cuda: bool,
                        expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert runtime.resolve_device(requested, Settings(device=configured)) == expected


@pytest.mark.parametrize(("requested", "message"), [("cuda", "no GPU"), ("cuda:0", "no GPU"), ("gpu", "not a torch")])
def test_resolve_device_rejects_what_cannot_run(monkeypatch: pytest.MonkeyPatch, requested: str, message: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=message):
        runtime.resolve_device(requested, Settings())
    with pytest.raises(ConfigError, match=message):  # MKT_DEVICE is checked the same way
        runtime.resolve_device(None, Settings(device=requested))


def test_ingest_parameters_follow_the_settings() -> None:
    cfg = Settings(max_quarantine_fraction=0.05, near_duplicates=False, near_duplicate_threshold=0.8)
    limits, dedup = runtime.ingest_parameters(None, cfg)
    assert limits.max_quarantine_fraction == 0.05 and dedup is None
    limits, dedup = runtime.ingest_parameters(True, cfg)
    assert dedup is not None and dedup.threshold == 0.8
    assert runtime.dedup_params(False, Settings()) is None and runtime.ingest_limits(cfg) == limits
