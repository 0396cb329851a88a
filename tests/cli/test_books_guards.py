"""CLI: the books' guards answer in one line with a non-zero exit, never a traceback (both engines)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace.cli.app import app
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

runner = CliRunner()


@pytest.fixture
def cli_db(mkt_home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from marketplace import runtime

    monkeypatch.setenv("MKT_DATABASE_URL", db_url)
    runtime.reset()
    return db_url


def _seed(audit: dict[str, object] | None) -> None:
    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as s, s.begin():
        camp = make_campaign(s, name="guarded", budget_minor=10_000, audit_threshold=0.9)
        _, xs = make_submission(s, make_provider(s, "guard-data"), ["guarded one", "guarded two"])
        make_score_run(s, camp, {xs[0].id: 1.0, xs[1].id: 2.0}, audit=audit)


def _one_line_failure(args: list[str], code: int) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(result.exception, SystemExit)
    return " ".join(result.output.split())


def test_price_needs_a_passed_audit_or_a_recorded_override_and_downgrade_keeps_the_books(cli_db: str) -> None:
    _seed({"passed": None, "reason": "audit skipped: no labeler"})
    out = _one_line_failure(["price", "guarded", "--period", "2026-11"], 8)
    assert "no passed audit" in out and "--override-audit" in out
    assert "outside 2000-2100" in _one_line_failure(["price", "guarded", "--period", "9999-12-31"], 2)
    ok = runner.invoke(app, ["price", "guarded", "--period", "2026-11", "--override-audit", "labeler down",
                             "--json"])
    assert ok.exit_code == 0, ok.output
    assert '"audit_override": "labeler down"' in ok.stdout
    assert "overlap" in _one_line_failure(["price", "guarded", "--period", "2026", "--override-audit", "x"], 4)
    out = _one_line_failure(["db", "downgrade", "base"], 4)
    assert "would drop the books" in out and "--drop-books" in out
    assert runner.invoke(app, ["ledger", "verify"]).exit_code == 0
    dropped = runner.invoke(app, ["db", "downgrade", "base", "--drop-books"])
    assert dropped.exit_code == 0, dropped.output
