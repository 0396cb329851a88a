"""Revaluation planning, the provider inbox, and the deployment file that schedules it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from marketplace.cli.app import app
from marketplace.db import LabelSet
from marketplace.deployments import default_prefect_yaml, load_deployment_specs
from marketplace.errors import ConfigError, NotFoundError
from marketplace.inbox import list_provider_folders
from marketplace.revaluation import current_period, plan_revaluation
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission


def test_plan_follows_the_pool(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        campaign = make_campaign(s, name="plan-c")
        provider = make_provider(s)
        make_submission(s, provider, ["alpha text " * 5, "beta text " * 5])
        first = plan_revaluation(s, "plan-c")
        assert (first.relabel, first.retrain) == (True, True)
        assert "no complete label set" in first.reason

        # A complete label set (created now) and a promoted version: nothing new → reuse both.
        make_score_run(s, campaign, {})
        s.flush()
        reused = plan_revaluation(s, campaign.id)
        assert (reused.relabel, reused.retrain) == (False, False)
        assert reused.latest_label_set_id is not None
        # Asking for another LinFiK configuration relabels; asking for the same one reuses.
        label_set = s.get(LabelSet, reused.latest_label_set_id)
        assert reused.latest_label_config == label_set.config
        same = plan_revaluation(s, campaign.id, label_config_hash=label_set.config_hash)
        assert (same.relabel, same.retrain) == (False, False)
        other = plan_revaluation(s, campaign.id, label_config_hash="f" * 64)
        assert (other.relabel, other.retrain) == (True, True) and "label configuration changed" in other.reason

        # New first-owner data after the label set → relabel and retrain.
        _, samples = make_submission(s, provider, ["gamma text " * 5])
        samples[0].created_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        s.flush()
        changed = plan_revaluation(s, "plan-c")
        assert (changed.relabel, changed.retrain, changed.new_samples_since_labels) == (True, True, 1)
        assert plan_revaluation(s, "plan-c", force=True).reason == "forced"
        with pytest.raises(NotFoundError, match="campaign 'nope' not found"):
            plan_revaluation(s, "nope")


def test_current_period_is_utc_month() -> None:
    assert current_period(dt.datetime(2026, 1, 31, 23, 59, tzinfo=dt.UTC)) == "2026-01"


def test_inbox_order_follows_manifest(tmp_path: Path) -> None:
    for name in ("copycat", "pydocs-press", "zeta", "target"):
        (tmp_path / name).mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"providers": [{"name": "pydocs-press"}, {"name": "copycat"}]}))
    assert [n for n, _ in list_provider_folders(tmp_path)] == ["pydocs-press", "copycat", "zeta"]
    with pytest.raises(ConfigError, match="not a folder"):
        list_provider_folders(tmp_path / "missing")


def test_prefect_yaml_defines_every_pipeline_stage() -> None:
    specs = load_deployment_specs(default_prefect_yaml())
    entrypoints = {s.entrypoint.split(":")[0] for s in specs}
    for stage in ("label", "train", "score", "price", "revalue", "report"):
        assert f"flows/{stage}.py" in entrypoints, f"no deployment for the {stage} flow"
    assert all(s.crons for s in specs), "every deployment is scheduled"


def test_serve_dry_run_checks_entrypoints_and_parameters(mkt_home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--dry-run", "--json", "--campaign", "c1"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert {d["name"] for d in listed} >= {"revalue-nightly", "price-daily"}
    assert all(d["parameters"]["campaign"] == "c1" for d in listed)

    bad = tmp_path / "bad.yaml"
    bad.write_text("deployments:\n  - name: x\n    entrypoint: flows/score.py:score\n    parameters: {bogus: 1}\n")
    result = runner.invoke(app, ["serve", "--dry-run", "--file", str(bad)])
    assert result.exit_code != 0
    assert "do not fit" in result.output
