"""The Prefect `label` flow (thread runner, and Dask on a local cluster) and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from marketplace.cli.app import app
from marketplace.db import Label, LabelSet, RunStatus
from tests.support.models import build_tiny_model, seed_campaign

runner = CliRunner()
SMALL = ["--rank-in", "8", "--rank-out", "8", "--max-length", "48", "--shard-size", "6", "--batch-size", "4"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp())


@pytest.fixture
def campaign_id(mkt_home: Path, model_dir: Path) -> int:
    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as session, session.begin():
        return seed_campaign(session, model_dir)


def test_label_flow_thread_runner(prefect_harness: None, campaign_id: int) -> None:
    from flows.label import label
    from marketplace.cli.common import open_db
    from marketplace.valuation.config import LinFiKConfig, ProjectionConfig

    config = LinFiKConfig(projection=ProjectionConfig(rank_in=8, rank_out=8), max_length=48)
    summary = label(campaign=str(campaign_id), n=16, config=config.model_dump(mode="json"), shard_size=6,
                    batch_size=4)
    assert summary["status"] == "complete" and summary["n_labeled"] == 16
    assert summary["shards_computed"] == 3 and summary["shards_skipped"] == 0
    _, factory = open_db()
    with factory() as session:
        ls = session.get(LabelSet, summary["label_set_id"])
        assert ls is not None and ls.status == RunStatus.COMPLETE
        assert ls.config_hash == config.config_hash() and ls.target_model_digest == summary["target_model_digest"]
        n = session.execute(select(func.count()).select_from(Label).where(Label.label_set_id == ls.id)).scalar_one()
        assert n == 16
    again = label(campaign=str(campaign_id), n=16, config=config.model_dump(mode="json"), shard_size=6)
    assert again["reused"] is True and again["label_set_id"] == summary["label_set_id"]
    # No config: the campaign keeps its latest label set's configuration (a scheduled run does not
    # silently switch it back to the library defaults).
    kept = label(campaign=str(campaign_id), n=16, config=None, shard_size=6)
    assert kept["reused"] is True and kept["label_set_id"] == summary["label_set_id"]


def test_cli_label_json_export_list_show(prefect_harness: None, campaign_id: int, tmp_path: Path) -> None:
    result = runner.invoke(app, ["label", str(campaign_id), "--n", "12", *SMALL, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_labeled"] == 12 and summary["status"] == "complete"
    lsid = str(summary["label_set_id"])

    out = tmp_path / "labels.parquet"
    result = runner.invoke(app, ["labels", "export", lsid, str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 12
    assert pq.read_table(out).num_rows == 12

    listed = json.loads(runner.invoke(app, ["labels", "list", "--json"]).stdout)
    assert [r["id"] for r in listed] == [int(lsid)]
    shown = json.loads(runner.invoke(app, ["labels", "show", lsid, "--json"]).stdout)
    assert shown["extra"]["lineage"]["checkpoints"][0]["digest"] == summary["target_model_digest"]

    bad = runner.invoke(app, ["label", str(campaign_id), "--n", "5", "--preconditioner", "newton"])
    assert bad.exit_code == 2 and "preconditioner" in bad.output
    missing = runner.invoke(app, ["label", "no-such-campaign", "--n", "5", *SMALL])
    assert missing.exit_code == 3 and "not found" in missing.output


@pytest.mark.slow
def test_label_flow_dask_local_cluster(prefect_harness: None, campaign_id: int) -> None:
    result = runner.invoke(app, ["label", str(campaign_id), "--n", "12", *SMALL, "--task-runner", "dask",
                                 "--workers", "2", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_labeled"] == 12 and summary["shards_computed"] == 2


def test_cli_model_build_demo_and_digest(mkt_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["model", "build-demo", str(out), "--steps", "3", "--layers", "1", "--d-model", "16", "--heads", "2",
            "--vocab-size", "300", "--context", "32", "--text-chars", "10000", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    built = json.loads(first.stdout)
    assert built["cached"] is False and (out / "config.json").exists() and (out / "tokenizer.json").exists()
    second = json.loads(runner.invoke(app, args).stdout)
    assert second["cached"] is True
    digest = json.loads(runner.invoke(app, ["model", "digest", str(out), "--json"]).stdout)
    assert len(digest["digest"]) == 64
    bad = runner.invoke(app, ["model", "build-demo", str(tmp_path / "x"), "--arch", "bert"])
    assert bad.exit_code == 2 and "arch" in bad.output
