"""``marketplace label`` checks its input before a flow starts: a bad count, an unknown campaign or an empty
pool is a one-line error in about a second, never after Prefect's start-up (no Prefect harness here: a flow
that started would have to start a server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace.cli.app import app
from marketplace.cli.common import open_db
from marketplace.valuation.runs import MAX_LABEL_COUNT
from tests.support.catalog import make_campaign


@pytest.mark.parametrize("n", ["0", "-3", str(MAX_LABEL_COUNT + 1), "1000000000"])
def test_a_label_count_out_of_range_is_refused_first(mkt_home: Path, n: str) -> None:
    result = CliRunner().invoke(app, ["label", "no-such-campaign", f"--n={n}"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--n must be between 1 and 1,000,000" in lines[0], result.output


def test_an_unknown_campaign_or_an_empty_pool_is_refused_before_the_flow(mkt_home: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["label", "no-such-campaign", "--n", "10"])
    assert unknown.exit_code != 0 and "no-such-campaign" in unknown.output and "Traceback" not in unknown.output
    _, factory = open_db()
    with factory() as session, session.begin():
        make_campaign(session, name="empty-market")
    empty = runner.invoke(app, ["label", "empty-market", "--n", "10"])
    assert empty.exit_code != 0 and "ingest provider data first" in empty.output, empty.output
