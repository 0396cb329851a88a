"""The CLI as a newcomer reads it: money in major units with the currency, accounts and providers by
name, nothing cut with "…" when the output is piped, ``submissions list|show`` for what happened to a
provider's data (copies say "already in the market", never whose), periods that default to the latest
with postings and an empty one that lists the others, and the revalue summary's gate decision."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from marketplace.cli.app import app
from marketplace.db import QuarantinedRecord, Submission
from tests.support.catalog import make_campaign, make_copy_submission, make_provider, make_score_run, make_submission

runner = CliRunner()
LONG_NAME = "a-provider-with-a-rather-long-name-that-an-eighty-column-table-would-cut"


def _seed() -> dict[str, int]:
    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as s, s.begin():
        camp = make_campaign(s, name="cli-first-use", budget_minor=1_062_074)
        first, copier = make_provider(s, LONG_NAME), make_provider(s, "copy-cat")
        sub, xs = make_submission(s, first, ["first sample text", "second sample text"], filename="mine.jsonl")
        copy_sub, _ = make_copy_submission(s, copier, sub, xs)
        sub.n_records, sub.n_quarantined = 3, 1
        s.add(QuarantinedRecord(submission_id=sub.id, record_index=2, location="line 3", reason_code="too_short",
                                detail="text has 3 characters, fewer than 16", excerpt="abc"))
        make_score_run(s, camp, {xs[0].id: 2.0, xs[1].id: 1.0})
        return {"camp": camp.id, "first": first.id, "copier": copier.id, "sub": sub.id, "copy_sub": copy_sub.id}


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_tables_show_money_and_names_uncut(mkt_home: Path) -> None:
    ids = _seed()
    _ok(["price", "cli-first-use", "--period", "2026-11", "--cap-percentile", "100"])
    balances = _ok(["ledger", "balances"])
    assert f"provider {LONG_NAME}" in balances and "campaign cli-first-use" in balances
    assert "10,620.74 EUR" in balances and "1062074" not in balances and "…" not in balances
    status = _ok(["status"])
    assert LONG_NAME in status and "copy-cat" in status and "cli-first-use" in status and "…" not in status
    data = json.loads(_ok(["status", "--json"]))
    assert {p["name"] for p in data["providers"]} == {LONG_NAME, "copy-cat"}
    assert data["campaigns"][0]["budget"] == "10,620.74 EUR"
    balances_json = json.loads(_ok(["ledger", "balances", "--json"]))["accounts"]
    assert {a["owner"] for a in balances_json} >= {f"provider {LONG_NAME}", "campaign cli-first-use", "marketplace"}
    assert ids["first"]


def test_submissions_list_and_show(mkt_home: Path) -> None:
    ids = _seed()
    listing = _ok(["submissions", "list", LONG_NAME])
    assert "mine.jsonl" in listing and "records quarantined" in listing
    copy_listing = json.loads(_ok(["submissions", "list", "copy-cat", "--json"]))
    (entry,) = copy_listing["submissions"]
    assert entry["already_in_market"] == 2 and entry["payable"] == 0
    shown = _ok(["submissions", "show", LONG_NAME, str(ids["sub"])])
    assert "line 3" in shown and "too_short" in shown and "fewer than 16" in shown
    copy_shown = _ok(["submissions", "show", "copy-cat", str(ids["copy_sub"])])
    assert "already in the market" in copy_shown
    assert LONG_NAME not in copy_shown and "mine.jsonl" not in copy_shown  # never whose
    # another provider's submission is simply not found (not "it belongs to ...")
    other = runner.invoke(app, ["submissions", "show", "copy-cat", str(ids["sub"])])
    assert other.exit_code == 3 and LONG_NAME not in other.output and "has no submission" in other.output


def test_report_periods(mkt_home: Path, tmp_path: Path) -> None:
    _seed()
    _ok(["price", "cli-first-use", "--period", "2026-11", "--cap-percentile", "100"])
    latest = json.loads(_ok(["report", "provider", LONG_NAME, "--out", str(tmp_path), "--json"]))
    assert latest["period"] == "2026-11" and latest["closing_minor"] == 1_062_074
    assert f"{LONG_NAME}-provider" in Path(latest["files"]["html"]).name or "provider" in latest["files"]["html"]
    empty = runner.invoke(app, ["report", "provider", LONG_NAME, "--period", "2026-12", "--out", str(tmp_path)])
    assert empty.exit_code == 3 and "2026-11" in empty.output
    copier = json.loads(_ok(["report", "provider", "copy-cat", "--out", str(tmp_path), "--json"]))
    assert copier["closing_minor"] == 0
    assert any("2 records were already in the market" in n for n in copier["notes"])


def test_revalue_defaults_and_gate_outcome() -> None:
    from typer.main import get_command

    from marketplace.cli.outcomes import audit_outcome, gate_outcome
    from marketplace.demo import DEMO_SIZES

    revalue = get_command(app).commands["revalue"]  # type: ignore[attr-defined]
    n_labels = next(p for p in revalue.params if p.name == "n_labels")
    assert n_labels.default == DEMO_SIZES["default"].n_labels
    kept = gate_outcome({"model_name": "alinfik-x", "version": "3", "promoted": False,
                         "reason": "0.41 < champion v2's 0.55 on the same held-out labels"})
    assert "v3 kept out" in kept and "champion v2" in kept
    assert "promoted to champion" in gate_outcome({"version": "1", "promoted": True, "reason": "first"})
    assert "champion keeps scoring" in gate_outcome(None)
    assert audit_outcome({"passed": False, "spearman": 0.1, "n": 60, "threshold": 0.5}).startswith("FAILED")


def test_submission_fixture_is_the_providers_own(mkt_home: Path) -> None:
    """The seed's copy is of the first provider's file: the detail above is tested on a real copy."""
    ids = _seed()
    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as s:
        copy = s.scalar(select(Submission).where(Submission.id == ids["copy_sub"]))
        assert copy is not None and copy.copy_of_submission_id == ids["sub"]


def test_revalue_summary_says_a_new_version_was_kept_out(capsys: object) -> None:
    from marketplace.cli.revalue_cmd import render_summary

    render_summary({
        "campaign": "c", "period": "2026-11",
        "plan": {"reason": "12 new first-owner samples since label set 1", "latest_label_set_id": 1},
        "label": {"n_labeled": 2400, "label_set_id": 2},
        "train": {"model_name": "alinfik-c", "version": "2", "promoted": False,
                  "reason": "held-out Spearman 0.41 does not beat champion v1's 0.58"},
        "score": {"model_name": "alinfik-c", "version": "1", "n_scored": 12,
                  "audit": {"passed": True, "spearman": 0.6, "n": 100, "threshold": 0.5}},
        "price": {"pricing_run_id": 3, "currency": "EUR", "allocated_minor": 1_000_000, "budget_minor": 1_000_000,
                  "n_paid": 40},
    })
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "alinfik-c v2 kept out" in out and "does not beat champion v1" in out
    assert "2400 exact labels" in out and "10,000.00 EUR" in out and "passed" in out
