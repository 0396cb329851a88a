"""stderr carries only what a user can act on: each known message is dropped by its own logger's filter
(other messages and any error of that logger pass; ``--verbose`` shows everything); every command records
Prefect runs under ``$MKT_HOME/prefect`` unless PREFECT_API_URL or PREFECT_HOME says otherwise; a fresh
embedded MLflow store keeps its default experiment's artifacts under MKT_HOME, not in the working folder;
the demo's hints name commands that run as printed."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from marketplace.cli.noise import KNOWN_NOISE, quiet_known_noise


def _passes(logger: logging.Logger, level: int, message: str) -> bool:
    record = logger.makeRecord(logger.name, level, __file__, 0, message, None, None)
    return logger.filter(record)


@pytest.mark.parametrize("noise", KNOWN_NOISE, ids=lambda n: f"{n.logger}:{n.starts[:30]}")
def test_each_known_message_is_dropped_and_nothing_else(noise: object) -> None:
    quiet_known_noise()
    try:
        logger = logging.getLogger(noise.logger)  # type: ignore[attr-defined]
        message = noise.starts + " and the rest of the line"  # type: ignore[attr-defined]
        assert not _passes(logger, logging.WARNING, message)
        assert _passes(logger, logging.ERROR, message)  # an error is never hidden
        assert _passes(logger, logging.WARNING, "something else went wrong")
        quiet_known_noise(verbose=True)
        assert _passes(logger, logging.WARNING, message)
    finally:
        quiet_known_noise(verbose=True)


def test_the_transformers_loss_type_line_is_gone(capsys: pytest.CaptureFixture[str]) -> None:
    """The real line, from a real model's loss, through transformers' own logging."""
    import torch

    from tests.support.tiny_models import tiny_gpt2

    quiet_known_noise()
    try:
        model = tiny_gpt2()
        ids = torch.tensor([[1, 2, 3, 4]])
        model(input_ids=ids, labels=ids)
        assert "loss_type" not in capsys.readouterr().err
    finally:
        quiet_known_noise(verbose=True)


def test_prefect_runs_live_under_the_home(tmp_path: Path) -> None:
    from marketplace.runtime import use_prefect_home
    from marketplace.settings import get_settings

    cfg = get_settings(home=tmp_path / "home")
    env: dict[str, str] = {}
    assert use_prefect_home(cfg, env) == tmp_path / "home" / "prefect"
    assert env["PREFECT_HOME"] == str(tmp_path / "home" / "prefect")
    own = {"PREFECT_HOME": "/somewhere/else"}
    assert use_prefect_home(cfg, own) == Path("/somewhere/else")
    server = {"PREFECT_API_URL": "http://prefect.example:4200/api"}
    assert use_prefect_home(cfg, server) is None and "PREFECT_HOME" not in server


def test_every_command_sets_the_prefect_home(mkt_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from marketplace.cli.app import app

    monkeypatch.delenv("PREFECT_HOME", raising=False)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    CliRunner().invoke(app, ["status"])  # any command (this one imports no Prefect; its outcome does not matter)
    assert os.environ["PREFECT_HOME"] == str(mkt_home.resolve() / "prefect")


def test_a_fresh_mlflow_store_keeps_artifacts_under_the_home(mkt_home: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from marketplace.runtime import current_settings, model_registry

    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    current_settings().ensure_home()
    registry = model_registry()
    location = registry.client.get_experiment("0").artifact_location
    assert location.startswith((mkt_home.resolve() / "mlruns").as_uri()), location
    assert not (elsewhere / "mlruns").exists()


def test_hints_name_this_installations_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from marketplace.cli.common import venv_command

    bin_dir = Path(sys.executable).parent
    monkeypatch.chdir(tmp_path)
    assert venv_command("mlflow") == str(bin_dir / "mlflow")  # outside the checkout: the full path
    monkeypatch.chdir(bin_dir.parent.parent)
    assert venv_command("prefect") == str(Path(bin_dir.parent.name) / "bin" / "prefect")


def test_registration_chatter_is_dropped_and_everything_else_kept(capsys: pytest.CaptureFixture[str]) -> None:
    """mlflow.register_model prints "already exists" and "Created version" to stderr on every registration
    (not through logging); the registry drops those lines only, also when the registration fails."""
    from marketplace.approx.registry import _without_registration_chatter

    with pytest.raises(RuntimeError), _without_registration_chatter():
        print("Registered model 'alinfik-x' already exists. Creating a new version of this model...",
              file=sys.stderr)
        print("WARNING mlflow: something the user must see", file=sys.stderr)
        print("Created version '2' of model 'alinfik-x'.", file=sys.stderr)
        raise RuntimeError("registration failed")
    err = capsys.readouterr().err
    assert "already exists" not in err and "Created version" not in err
    assert "something the user must see" in err
