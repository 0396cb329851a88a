"""What a newcomer reads in the reports: the buyer report ranks by score (capped ties never put a lower
score above a higher one), shows the held-out metrics, the audit, the providers paid nothing and why, and
a per-provider chart; a statement exists for a provider paid nothing (a copycat) and explains its
copies; files are named by provider or campaign name as well as id; a period without postings lists the
periods that have some."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.db import ApproximatorVersion, make_session_factory
from marketplace.errors import NotFoundError
from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from marketplace.reports import (
    build_buyer_report,
    build_provider_statement,
    buyer_report_html,
    latest_statement_period,
    provider_submissions,
    statement_html,
    submitting_provider_ids,
    write_buyer_report,
    write_statement,
)
from marketplace.reports.statements import require_postings
from tests.support.catalog import make_campaign, make_copy_submission, make_provider, make_score_run, make_submission

# cap at the 50th percentile: the three highest scores are all capped to the same value
POLICY = PricingPolicy(screen="none", cap_percentile=50, fee_bps=0)


@pytest.fixture
def factory(sqlite_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(sqlite_engine)


def _market(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as s, s.begin():
        camp = make_campaign(s, name="first-use", budget_minor=100_000)
        good, meh, copier, useless = (make_provider(s, n) for n in ("good-docs", "meh-text", "copy-cat", "useless"))
        sub_g, xg = make_submission(s, good, ["alpha one", "alpha two", "alpha three", "alpha four"])
        _, xm = make_submission(s, meh, ["beta one", "beta two"])
        make_copy_submission(s, copier, sub_g, xg)
        _, xu = make_submission(s, useless, ["gamma one"])
        # sample ids ascending in this order; the highest score has the highest id of the capped ones
        run = make_score_run(s, camp, {xg[0].id: 5.0, xg[1].id: 9.0, xg[2].id: 7.0, xg[3].id: 0.5,
                                       xm[0].id: 1.0, xm[1].id: 0.2, xu[0].id: -3.0},
                             audit={"passed": True, "spearman": 0.61, "threshold": 0.5, "n": 60})
        version = s.scalar(select(ApproximatorVersion).where(ApproximatorVersion.id == run.approximator_version_id))
        assert version is not None
        version.metrics = {"approx_spearman": 0.58, "tfidf_ridge_spearman": 0.55, "target_cosine_spearman": 0.27}
        version.decision = "promoted: 0.580 >= floor 0.5 and no champion yet"
        ids = {"camp": camp.id, "good": good.id, "meh": meh.id, "copier": copier.id, "useless": useless.id}
    run_pricing(factory, ids["camp"], "2026-11", POLICY)
    return ids


def test_buyer_report_ranks_by_score_and_explains_itself(factory: sessionmaker[Session], tmp_path: Path) -> None:
    ids = _market(factory)
    with factory() as s:
        rep = build_buyer_report(s, "first-use", top_k=5)
    scores = [x.score for x in rep.top_samples]
    assert scores == sorted(scores, reverse=True) == [9.0, 7.0, 5.0, 1.0, 0.5]
    assert len({x.value for x in rep.top_samples[:3]}) == 1  # capped: equal values, still ordered by score
    assert rep.n_labels == 10 and rep.heldout["approx_spearman"] == 0.58 and rep.audit["passed"] is True
    assert "promoted" in rep.gate_decision
    unpaid = {u.provider_name: u.reason for u in rep.unpaid}
    assert set(unpaid) == {"copy-cat", "useless"}
    assert "already in the market" in unpaid["copy-cat"] and "at or below zero" in unpaid["useless"]
    assert "good-docs" not in unpaid["copy-cat"]  # never says whose content it copied

    page = buyer_report_html(rep)
    assert page.count("<svg") == 1 and "Payout per provider" in page and "copy-cat" in page
    assert "TF-IDF + ridge" in page and "0.580" in page and "passed" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # no network resource
    files = write_buyer_report(rep, tmp_path)
    assert files["html"].name == f"buyer_first-use-campaign{ids['camp']}_2026-11.html"
    unpaid_rows = list(csv.reader(files["csv_unpaid"].open(encoding="utf-8")))
    assert unpaid_rows[0] == ["Provider id", "Provider", "Samples", "Why nothing is paid"]


def test_every_submitting_provider_gets_a_statement_and_copies_are_explained(
        factory: sessionmaker[Session], tmp_path: Path) -> None:
    ids = _market(factory)
    with factory() as s:
        assert submitting_provider_ids(s) == sorted(ids[k] for k in ("good", "meh", "copier", "useless"))
        st = build_provider_statement(s, "copy-cat", "2026-11")
        subs = provider_submissions(s, ids["copier"])
    assert st.closing_minor == 0 and not st.lines
    assert st.n_already_in_market == 4 and subs[0].already_in_market == 4 and subs[0].payable == 0
    assert any("4 records were already in the market and are not paid" in n for n in st.notes)
    page = statement_html(st)
    assert "4 records were already in the market and are not paid" in page
    assert "good-docs" not in page  # the first owner stays unnamed
    files = write_statement(st, tmp_path)
    assert files["html"].name == f"statement_copy-cat-provider{ids['copier']}_2026-11.html"
    header = next(csv.reader(files["csv_transactions"].open(encoding="utf-8")))
    assert "Posted (UTC)" in header and "Campaign" in header and not any("_" in h for h in header)


def test_statement_periods_default_to_the_latest_and_an_empty_one_lists_them(factory: sessionmaker[Session]) -> None:
    _market(factory)
    with factory() as s:
        top = build_provider_statement(s, "good-docs").top_samples
        assert [x.score for x in top] == [9.0, 7.0, 5.0, 0.5]  # by score, though the first three tie in value
        assert latest_statement_period(s, "good-docs") == "2026-11"
        assert build_provider_statement(s, "good-docs").period == "2026-11"
        with pytest.raises(NotFoundError, match="good-docs has postings in 2026-11"):
            require_postings(s, "good-docs", "2026-12")
        require_postings(s, "copy-cat", "2026-11")  # never paid, in a priced period: its statement explains why
        with pytest.raises(NotFoundError, match="the market has postings in 2026-11"):
            require_postings(s, "copy-cat", "2026-12")
        with pytest.raises(NotFoundError, match="priced for 2026-11"):
            build_buyer_report(s, "first-use", "2026-12")
