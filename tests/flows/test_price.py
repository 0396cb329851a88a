"""One pricing policy from every entry point: ``marketplace price``, the ``price`` flow and the ``revalue``
flow (as their deployments run them: no policy given) post identical books for a campaign that has its
own pricing options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from marketplace.cli.app import app
from marketplace.db import PricingRun
from marketplace.ledger import verify_ledger
from marketplace.ledger.balances import credited_by_submission
from marketplace.pricing import PricingPolicy, campaign_policy
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

runner = CliRunner()
OPTIONS = {"pricing": {"cap_percentile": 60, "fee_bps": 250, "screen": "none"}}


def _seed() -> dict[str, int]:
    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as s, s.begin():
        camp = make_campaign(s, name="own-policy", budget_minor=100_000)
        camp.options = OPTIONS
        a, b = make_provider(s, "alpha-data"), make_provider(s, "beta-data")
        _, xa = make_submission(s, a, ["alpha one", "alpha two", "alpha three"])
        _, xb = make_submission(s, b, ["beta one", "beta two"])
        scores = dict(zip([x.id for x in xa + xb], [9.0, 1.0, 2.0, 3.0, 5.0], strict=True))
        run = make_score_run(s, camp, scores)
        return {"campaign": camp.id, "score_run": run.id}


def _books(period: str) -> tuple[dict[int, dict[Any, int]], str]:
    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as s:
        [run] = s.scalars(select(PricingRun).where(PricingRun.period == period)).all()
        return credited_by_submission(s, run.campaign_id, period), run.policy_hash


def test_cli_price_flow_and_revalue_flow_post_identical_books(prefect_harness: None, mkt_home: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.revalue
    from flows.price import price

    ids = _seed()

    cli = runner.invoke(app, ["price", "own-policy", "--period", "2026-01", "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["policy"]["fee_bps"] == 250

    flow_out = price("own-policy", "2026-02")  # the price-daily deployment passes no policy

    # The revalue-nightly deployment passes no pricing policy; its expensive stages are not under test
    # here (nothing to relabel or retrain; scoring is stubbed with the campaign's score run).
    monkeypatch.setattr(flows.revalue, "with_configured_runner", lambda flow_obj: flow_obj)
    monkeypatch.setattr(flows.revalue, "score", lambda campaign, **_: {"score_run_id": ids["score_run"]})
    summary = flows.revalue.revalue("own-policy", "2026-03")
    assert summary["plan"]["relabel"] is False and summary["plan"]["retrain"] is False

    books = {period: _books(period) for period in ("2026-01", "2026-02", "2026-03")}
    expected_hash = campaign_policy(OPTIONS).policy_hash
    assert expected_hash != PricingPolicy(screen="none").policy_hash
    assert {policy_hash for _, policy_hash in books.values()} == {expected_hash}
    credited = [c for c, _ in books.values()]
    assert credited[0] == credited[1] == credited[2]
    assert credited[0] and all(kinds for kinds in credited[0].values())
    assert flow_out["policy_hash"] == summary["price"]["policy_hash"] == expected_hash
    assert flow_out["transactions_posted"] == summary["price"]["transactions_posted"] == 2

    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as s:
        assert verify_ledger(s).ok
