"""Statements and buyer reports: numbers, provider isolation, HTML escaping, CSV formula injection."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import Campaign, make_session_factory
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from marketplace.reports import (
    build_buyer_report,
    build_provider_statement,
    sanitize_cell,
    statement_html,
    write_buyer_report,
    write_statement,
)
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

POLICY = PricingPolicy(screen="none", cap_percentile=100, fee_bps=500)
EVIL_NAME = '<script>alert("a")</script> Ltd'
INJECT = '=HYPERLINK("http://evil.example","click") first sample of A'


@pytest.mark.parametrize("text", ["=1+2", "+33 1 23", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_prefixes_are_neutralised(text: str) -> None:
    assert sanitize_cell(text) == "'" + text
    assert sanitize_cell("plain") == "plain" and sanitize_cell(-5) == -5 and sanitize_cell(None) == ""


def _world(factory: sessionmaker[Session]) -> dict[str, object]:
    with factory() as s, s.begin():
        camp = make_campaign(s, name="camp-report", budget_minor=100_000)
        a = make_provider(s, EVIL_NAME)
        b = make_provider(s, "Beta Secret Corp")
        _sub_a, xa = make_submission(s, a, [INJECT, "a second sample of A", "a third sample of A"],
                                    filename="+a_file.jsonl")
        sub_b, xb = make_submission(s, b, ["BETA-ONLY confidential text one", "BETA-ONLY confidential text two"],
                                    filename="beta_private.jsonl")
        make_score_run(s, camp, {xa[0].id: 5.0, xa[1].id: 1.0, xa[2].id: 0.0, xb[0].id: 3.0, xb[1].id: 1.0})
        ids = {"camp": camp.id, "a": a.id, "b": b.id, "sub_b": sub_b.id, "samples_b": [x.id for x in xb],
               "samples_a": xa}
    run_pricing(factory, ids["camp"], "2026-10", POLICY)
    with factory() as s, s.begin():
        camp2 = s.get(Campaign, ids["camp"])
        assert camp2 is not None
        make_score_run(s, camp2, {xa[0].id: 1.0, xa[1].id: 1.0, xa[2].id: 0.0, xb[0].id: 3.0, xb[1].id: 1.0})
    run_pricing(factory, ids["camp"], "2026-11", POLICY)  # period 2 priced from score run 2
    with factory() as s, s.begin():
        camp3 = s.get(Campaign, ids["camp"])
        assert camp3 is not None
        make_score_run(s, camp3, {xa[0].id: 2.0, xa[1].id: 1.0, xa[2].id: 0.0, xb[0].id: 3.0, xb[1].id: 1.0})
    run_pricing(factory, ids["camp"], "2026-11", POLICY)  # revaluation of period 2: an adjustment for A
    return ids


def test_statement_numbers_and_lineage(session_factory: sessionmaker[Session]) -> None:
    ids = _world(session_factory)
    with session_factory() as s:
        oct_ = build_provider_statement(s, ids["a"], "2026-10")
        nov = build_provider_statement(s, EVIL_NAME, "2026-11")
    # Oct: A has 6/10 of the value -> 60,000, minus the 5% fee -> 57,000 credited.
    assert (oct_.opening_minor, oct_.credits_minor, oct_.adjustments_minor, oct_.closing_minor) == (
        0, 57_000, 0, 57_000)
    # Nov: first 2/6 of 100,000 -> 33,334 (two leftover units go to A's .67 remainders; fee 1,666, net 31,668);
    # revalued to 3/7 -> 42,857 (fee 2,142, net 40,715): an adjustment of +9,047.
    assert nov.opening_minor == 57_000
    assert nov.credits_minor == 31_668 and nov.adjustments_minor == 40_715 - 31_668
    assert nov.closing_minor == 57_000 + 40_715
    assert [ln.kind for ln in nov.lines] == ["allocation", "adjustment"]
    assert all(ln.pricing_run_id and ln.model_version and ln.label_set_id for ln in nov.lines)
    assert len({ln.model_version for ln in nov.lines}) == 2  # each line names its own approximator version
    assert [x.amount_minor for x in nov.submissions] == [42_857]
    assert nov.top_samples[0].excerpt.startswith("=HYPERLINK") and nov.bottom_samples[0].value == 0.0
    assert nov.balance_history[-1][1] == nov.closing_minor


def test_provider_statement_never_shows_another_provider(session_factory: sessionmaker[Session],
                                                         tmp_path: Path) -> None:
    ids = _world(session_factory)
    with session_factory() as s:
        st = build_provider_statement(s, ids["a"], "2026-11")
    paths = write_statement(st, tmp_path / "out")
    blobs = {k: p.read_text(encoding="utf-8") for k, p in paths.items()}
    forbidden = ["Beta Secret Corp", "BETA-ONLY", "beta_private.jsonl", f"provider:{ids['b']}:payable"]
    for name, blob in blobs.items():
        for word in forbidden:
            assert word not in blob, (name, word)
    own_sample_ids = {x.id for x in ids["samples_a"]}  # type: ignore[attr-defined]
    assert {x.sample_id for x in st.top_samples + st.bottom_samples} <= own_sample_ids
    assert {x.submission_id for x in st.submissions} | {ln.submission_id for ln in st.lines} == {
        ids["samples_a"][0].submission_id}  # type: ignore[index]
    assert ids["sub_b"] not in {ln.submission_id for ln in st.lines}


@pytest.fixture
def sqlite_factory(sqlite_engine: Engine) -> sessionmaker[Session]:
    """Rendering does not depend on the engine (the numbers test runs on both): SQLite only, to stay fast."""
    return make_session_factory(sqlite_engine)


def test_html_escapes_and_embeds_plots(sqlite_factory: sessionmaker[Session]) -> None:
    session_factory = sqlite_factory
    ids = _world(session_factory)
    with session_factory() as s:
        page = statement_html(build_provider_statement(s, ids["a"], "2026-11"))
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;a&quot;)&lt;/script&gt;" in page
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page.replace("http://evil.example", "")  # no external resources, only the escaped text
    assert "<link" not in page and "src=\"http" not in page


def test_csv_is_safe_against_formula_injection(sqlite_factory: sessionmaker[Session], tmp_path: Path) -> None:
    session_factory = sqlite_factory
    ids = _world(session_factory)
    with session_factory() as s:
        paths = write_statement(build_provider_statement(s, ids["a"], "2026-11"), tmp_path)
    cells = [c for key in ("csv_samples", "csv_submissions", "csv_transactions")
             for row in csv.reader(paths[key].open(encoding="utf-8")) for c in row]
    assert "'" + INJECT in cells and "'+a_file.jsonl" in cells
    assert not [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r"))]
    # Negative amounts stay numbers (data, not formulas); a negative in a text cell would be quoted.
    assert all(not c.startswith("-") or c.lstrip("-").isdigit() for c in cells)


def test_buyer_report(session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    _world(session_factory)
    with session_factory() as s:
        rep = build_buyer_report(s, "camp-report", top_k=3)
    assert rep.period == "2026-11" and [p.amount_minor for p in rep.providers] == [57_143, 42_857]
    assert sum(p.amount_minor for p in rep.providers) == rep.allocated_minor == 100_000
    assert [x.rank for x in rep.top_samples] == [1, 2, 3] and rep.top_samples[0].value == 3.0
    paths = write_buyer_report(rep, tmp_path)
    page = paths["html"].read_text(encoding="utf-8")
    assert "&lt;script&gt;" in page and "<script>" not in page and "data:image/png;base64," in page
    assert json.dumps(rep.model_version) and rep.model_version in page
