"""CLI: price, ledger verify/balances, report provider/campaign, status; and the flows under Prefect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from marketplace.cli.app import app
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

runner = CliRunner()


def _seed(home: Path) -> dict[str, int]:
    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as s, s.begin():
        camp = make_campaign(s, name="cli-camp", budget_minor=10_000)
        a, b = make_provider(s, "alpha-data"), make_provider(s, "beta-data")
        _, xa = make_submission(s, a, ["alpha sample one", "alpha sample two"])
        _, xb = make_submission(s, b, ["beta sample one"])
        make_score_run(s, camp, {xa[0].id: 3.0, xa[1].id: 1.0, xb[0].id: 4.0})
        return {"campaign": camp.id, "a": a.id, "b": b.id}


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_price_verify_balances_reports_status(mkt_home: Path, tmp_path: Path) -> None:
    ids = _seed(mkt_home)
    out = _json(["price", "cli-camp", "--period", "2026-11", "--cap-percentile", "100", "--fee-bps", "100", "--json"])
    assert out["created"] and out["status"] == "complete" and out["transactions_posted"] == 2
    assert out["allocated_minor"] == 10_000 and out["policy"]["fee_bps"] == 100
    again = _json(["price", "cli-camp", "--period", "2026-11", "--cap-percentile", "100", "--fee-bps", "100", "--json"])
    assert again["pricing_run_id"] == out["pricing_run_id"] and not again["created"]
    assert again["transactions_posted"] == 0

    verify = _json(["ledger", "verify", "--json"])
    assert verify["ok"] and verify["stats"]["transactions"] == 2
    balances = {a["code"]: a for a in _json(["ledger", "balances", "--json"])["accounts"]}
    assert balances[f"provider:{ids['a']}:payable"]["balance_minor"] == 4950  # 50% of 10,000 less 1% fee
    assert balances["marketplace:fees"]["balance_minor"] == 100

    st = _json(["report", "provider", "alpha-data", "--period", "2026-11", "--out", str(tmp_path), "--json"])
    assert st["closing_minor"] == 4950 and Path(st["files"]["html"]).is_file()
    assert "beta" not in Path(st["files"]["html"]).read_text(encoding="utf-8")
    buyer = _json(["report", "campaign", "cli-camp", "--out", str(tmp_path), "--json"])
    assert [p["provider_name"] for p in buyer["providers"]] == ["alpha-data", "beta-data"]

    status = _json(["status", "--json"])
    assert status["ledger"]["transactions"] == 2 and status["ledger"]["pricing_runs"] == 1

    bad = runner.invoke(app, ["price", "cli-camp", "--period", "2026-13"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    missing = runner.invoke(app, ["report", "provider", "nobody", "--period", "2026-11"])
    assert missing.exit_code == 3


def test_verify_exits_non_zero_on_a_violation(mkt_home: Path) -> None:
    _seed(mkt_home)
    assert runner.invoke(app, ["price", "cli-camp", "--period", "2026-11"]).exit_code == 0
    from marketplace.cli.common import open_db

    engine, _ = open_db()
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_accounts SET debits_minor = debits_minor + 5 WHERE code = 'marketplace:fees'"))
    result = runner.invoke(app, ["ledger", "verify", "--json"])
    assert result.exit_code == 7
    report = json.loads(result.stdout)
    assert not report["ok"] and report["checks"]["stored_balance"] == 1
    assert "marketplace:fees" in report["violations"][0]["message"]


def test_help_for_every_command() -> None:
    for args in (["price"], ["ledger", "verify"], ["ledger", "balances"], ["report", "provider"],
                 ["report", "campaign"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "--json" in result.output


@pytest.mark.slow
def test_pricing_and_reports_flows(prefect_harness: None, mkt_home: Path, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from flows.price import price
    from flows.report import report

    _seed(mkt_home)
    result = price("cli-camp", "2026-11", {"cap_percentile": 100})
    assert result["transactions_posted"] == 2 and result["superseded_by"] is None
    assert price("cli-camp", "2026-11", {"cap_percentile": 100})["transactions_posted"] == 0
    out = report("cli-camp", str(tmp_path / "reports"))
    assert out["period"] == "2026-11" and len(out["statements"]) == 2
    assert all(Path(p).is_file() for files in out["statements"].values() for p in files.values())
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert any(k and k.startswith("statement-") for k in keys) and any(k and k.startswith("buyer-") for k in keys)
