"""End to end through the CLI and the Prefect flows (``train``, ``score``) on the embedded defaults
(SQLite + local MLflow store under an isolated MKT_HOME): train → champion → score in shards →
incremental rescore → audit pass/fail → exports, selection, active labeling, registry lookups."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from sqlalchemy import select
from typer.testing import CliRunner

from marketplace.cli.app import app
from marketplace.db import Campaign, Score
from tests.support.approx import build_tiny_encoder, make_labeled_campaign

torch.set_num_threads(1)
runner = CliRunner()


def _ok(args: list[str]) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


@pytest.mark.slow
def test_train_score_export_registry_through_the_cli(prefect_harness: None, mkt_home: Path, tmp_path: Path) -> None:
    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as s, s.begin():
        fx = make_labeled_campaign(s, name="docs", n_samples=130, n_labeled=110, audit_threshold=-1.0)
    encoder = build_tiny_encoder(tmp_path / "encoder")
    common = ["--encoder", str(encoder), "--max-length", "64"]

    trained = _ok(["train", "docs", *common, "--epochs", "30", "--floor", "-1", "--json"])
    assert trained["promoted"] and trained["version"] == "1" and trained["model_name"] == "alinfik-docs"
    assert {"approx_spearman", "tfidf_ridge_spearman", "target_cosine_spearman"} <= set(trained["metrics"])

    labeler = "tests.support.approx:proxy_labeler_factory"
    scored = _ok(["score", "docs", "--shard-size", "50", "--audit-n", "10", "--audit-labeler", labeler, "--json"])
    n = len(fx.sample_ids)
    assert scored["resolved_from"] == "models:/alinfik-docs@champion" and scored["version"] == "1"
    assert scored["n_todo"] == scored["n_scored"] == n and scored["n_shards"] == -(-n // 50)
    assert scored["audit"]["passed"] is True and scored["audit"]["n"] == 10
    with factory() as s:
        assert s.scalar(select(Score.id).limit(1)) is not None
        versions = set(s.scalars(select(Score.approximator_version_id)).all())
    assert versions == {trained["approximator_version_id"]}

    again = _ok(["score", "docs", "--audit-n", "0", "--json"])  # incremental: nothing left to score
    assert again["n_todo"] == 0 and again["n_scored"] == 0 and again["audit"]["passed"] is None

    exported = _ok(["scores", "export", "docs", str(tmp_path / "scores.csv"), "--json"])
    assert exported["n_rows"] == n and len(pd.read_csv(tmp_path / "scores.csv")) == n
    top = _ok(["select", "docs", str(tmp_path / "top.jsonl"), "--top", "0.2", "--json"])
    assert top["n_rows"] == -(-len(fx.first_owner_ids) * 2 // 10)
    active = _ok(["active-label", "docs", "--n", "3", "--out", str(tmp_path / "next.txt"), "--json"])
    assert len(active["candidates"]) == 3
    assert (tmp_path / "next.txt").read_text().split() == [str(c["sample_id"]) for c in active["candidates"]]

    # (The gate's worse/better decisions are covered in test_registry.py.)
    listed = _ok(["registry", "list", "docs", "--json"])
    assert [v["version"] for v in listed["versions"]] == ["1"]
    assert listed["versions"][0]["aliases"] == ["candidate", "champion"]
    assert [r["n_scored"] for r in listed["versions"][0]["score_runs"]] == [n, 0]
    shown = _ok(["registry", "show", "docs", "1", "--json"])
    assert shown["lineage"]["label_set_id"] == str(fx.label_set_id) and shown["tags"]["code_version"]
    history = _ok(["registry", "history", "docs", "--json"])
    assert [(e["version"], e["action"]) for e in history] == [("1", "registered"), ("1", "promoted")]
    promoted = _ok(["registry", "promote", "docs", "1", "--reason", "operator test", "--json"])
    assert promoted["version"] == "1"
    last = _ok(["registry", "history", "docs", "--json"])[-1]
    assert last["action"] == "promoted" and "operator test" in last["reason"]

    # The audit fails when exact LinFiK disagrees: exit code 8, the run is marked failed, payouts stop.
    with factory() as s, s.begin():
        s.scalars(select(Campaign)).one().audit_threshold = 0.3
    result = runner.invoke(app, ["score", "docs", "--version", "1", "--audit-n", "10", "--audit-labeler",
                                 "tests.support.approx:contrary_labeler_factory", "--json"])
    assert result.exit_code == 8, (result.stdout, result.stderr)
    assert "payouts are stopped" in result.stderr
