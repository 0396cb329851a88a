"""The ``report`` flow writes the buyer report and a statement for every provider that submitted (a
copycat paid nothing included), files and Prefect artifacts named by provider or campaign name and id."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from marketplace.cli.app import app
from tests.support.catalog import make_campaign, make_copy_submission, make_provider, make_score_run, make_submission


def _seed() -> dict[str, int]:
    from marketplace.cli.common import open_db

    _, factory = open_db()
    with factory() as s, s.begin():
        camp = make_campaign(s, name="report-flow", budget_minor=100_000)
        a, c = make_provider(s, "alpha-data"), make_provider(s, "copy-cat")
        sub, xa = make_submission(s, a, ["alpha one", "alpha two"])
        make_copy_submission(s, c, sub, xa)
        make_score_run(s, camp, {xa[0].id: 2.0, xa[1].id: 1.0})
        return {"campaign": camp.id, "a": a.id, "c": c.id}


async def _artifact_keys() -> set[str]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {a.key for a in await client.read_artifacts() if a.key}


def test_every_submitting_provider_gets_a_statement(prefect_harness: None, mkt_home: Path, tmp_path: Path) -> None:
    from flows.report import report

    ids = _seed()
    priced = CliRunner().invoke(app, ["price", "report-flow", "--period", "2026-11", "--cap-percentile", "100"])
    assert priced.exit_code == 0, priced.output
    out = report("report-flow", str(tmp_path), "2026-11")
    assert set(out["statements"]) == {ids["a"], ids["c"]}
    names = {Path(files["html"]).name for files in out["statements"].values()}
    assert names == {f"statement_alpha-data-provider{ids['a']}_2026-11.html",
                     f"statement_copy-cat-provider{ids['c']}_2026-11.html"}
    copycat_page = Path(out["statements"][ids["c"]]["html"]).read_text(encoding="utf-8")
    assert "2 records were already in the market and are not paid" in copycat_page
    assert Path(out["buyer"]["html"]).name == f"buyer_report-flow-campaign{ids['campaign']}_2026-11.html"
    keys = asyncio.run(_artifact_keys())
    assert f"statement-copy-cat-{ids['c']}-2026-11" in keys and f"buyer-report-flow-{ids['campaign']}-2026-11" in keys
