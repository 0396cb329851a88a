"""`marketplace demo` stops before building anything when its store would mix the sizes' pools, and
keeps an existing campaign's model (never rebuilding it) - checked without running the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace import runtime
from marketplace.cli.app import app
from marketplace.demo import DEMO_SIZES
from tests.support.catalog import make_campaign

runner = CliRunner()


@pytest.fixture
def demo_env(mkt_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The demo sets these for the rest of its process: let the test restore them.
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("MKT_MODELS_DIR", str(mkt_home / "models"))
    monkeypatch.setenv("MKT_HOME", str(mkt_home))
    return mkt_home


def _seed(campaign: str, model_dir: Path | None = None) -> None:
    from marketplace.cli.common import open_db

    with open_db()[1]() as session, session.begin():
        camp = make_campaign(session, campaign)
        if model_dir is not None:
            camp.target_model_path = str(model_dir)


def test_default_demo_refuses_a_home_holding_the_small_demo(demo_env: Path) -> None:
    _seed(DEMO_SIZES["small"].campaign)
    result = runner.invoke(app, ["demo", "--json"])
    assert result.exit_code == 2, result.output
    assert "demo-python-docs-small" in result.output and "another database" in result.output
    assert not (demo_env / "models").exists() or not any((demo_env / "models").iterdir())


def test_small_demo_refuses_a_shared_database_holding_the_default_one(demo_env: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With a shared database (MKT_DATABASE_URL) the small demo is refused where the default one is."""
    monkeypatch.setenv("MKT_DATABASE_URL", f"sqlite:///{demo_env / 'shared.db'}")
    runtime.reset()
    _seed(DEMO_SIZES["default"].campaign)
    result = runner.invoke(app, ["demo", "--small", "--json"])
    assert result.exit_code == 2, result.output
    assert "demo-python-docs " in " ".join(result.output.split()) + " "
    assert (demo_env / "demo-small").is_dir()  # the small size's own home


def test_an_existing_campaign_keeps_its_model_and_a_changed_one_is_reported(demo_env: Path, tmp_path: Path) -> None:
    model = tmp_path / "old-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    _seed(DEMO_SIZES["default"].campaign, model)  # pinned digest differs from the folder's
    result = runner.invoke(app, ["demo", "--json"])
    assert result.exit_code == 6, result.output
    assert "cannot be repaired in place" in " ".join(result.output.split())
    assert sorted(p.name for p in model.iterdir()) == ["config.json"]
