"""``marketplace validate``: the fine-tuning ground truth from the command line, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace.cli.app import app
from tests.support.models import build_tiny_model
from tests.support.validation import seed_scored_campaign

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp())


def _seed(model_dir: Path, *, priced: bool) -> int:
    from marketplace.cli.common import open_db

    return seed_scored_campaign(open_db()[1], model_dir, priced=priced)


def test_validate_prints_shares_and_writes_the_report(mkt_home: Path, model_dir: Path, tmp_path: Path) -> None:
    _seed(model_dir, priced=True)
    out = tmp_path / "validation"
    result = runner.invoke(app, ["validate", "tiny", "-k", "3", "--seeds", "0", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    res = doc["result"]
    assert res["campaign_name"] == "tiny" and res["period"] == "2026-10" and res["headline"] == "adamw"
    assert {v["regime"] for v in res["verdicts"]} == {"adamw", "sgd"}
    assert sum(p["amount_minor"] for p in res["providers"]) == res["allocated_minor"] > 0
    shares = [p["payout_share"] for p in res["providers"]]
    assert abs(sum(shares) - 1.0) < 1e-9
    for v in res["verdicts"]:
        assert 0.0 <= v["harmful_share"] <= 1.0
        assert v["misallocated_share"] is None or 0.0 <= v["misallocated_share"] <= 1.0
    assert all(Path(p).is_file() and Path(p).parent == out for p in doc["files"].values())
    assert set(doc["files"]) == {"html", "csv", "md", "json"}


def test_validate_without_a_pricing_run_is_a_one_line_error(mkt_home: Path, model_dir: Path) -> None:
    _seed(model_dir, priced=False)
    result = runner.invoke(app, ["validate", "tiny", "-k", "3", "--seeds", "0"])
    assert result.exit_code != 0
    assert "marketplace price" in result.stderr and "Traceback" not in result.output + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_validate_refuses_bad_options_before_any_work(mkt_home: Path) -> None:
    result = runner.invoke(app, ["validate", "whatever", "--seeds", "0", "--seeds", "0"])
    assert result.exit_code != 0 and "seeds" in result.stderr
    assert "Traceback" not in result.output + result.stderr
