"""Authorization of every endpoint: another tenant's object is a 404 that says nothing more than a missing
one (Hypothesis over ids and names), a role's forbidden endpoint is a 403, and no response shows another
provider's names, texts or amounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace import runtime
from tests.support.api import Market, api_client, api_settings, build_market, leaks


@pytest.fixture
def market_client(tmp_path: Path, db_url: str) -> Iterator[tuple[TestClient, Market]]:
    cfg = api_settings(tmp_path, db_url)
    with api_client(cfg) as client:
        market = build_market(client.app.state.session_factory)  # type: ignore[attr-defined]
        yield client, market


CAMPAIGN_PATHS = ["/api/v1/campaigns/{ref}", "/api/v1/campaigns/{ref}/report",
                  "/api/v1/campaigns/{ref}/selection?top=0.5", "/api/v1/campaigns/{ref}/validation"]


def _uniform(response: Any, kind: str, ref: object) -> None:
    """The one 404 body: the same for another tenant's object and a missing one."""
    assert response.status_code == 404, response.text
    assert response.json() == {"error": "not_found", "detail": f"{kind} {ref!r} not found"}


def test_buyers_see_only_their_campaigns(market_client: tuple[TestClient, Market]) -> None:
    client, m = market_client
    one = str(m.campaign_ids["camp-one"])
    for path in CAMPAIGN_PATHS[:3]:
        own = client.get(path.format(ref="camp-one"), headers=m.headers("b-one"))
        assert own.status_code == 200, (path, own.text)
        for ref in ("camp-one", one, f"id:{one}"):
            _uniform(client.get(path.format(ref=ref), headers=m.headers("b-two")), "campaign", ref)
        _uniform(client.get(path.format(ref="no-such-campaign"), headers=m.headers("b-two")), "campaign",
                 "no-such-campaign")
        assert client.get(path.format(ref="camp-one"), headers=m.headers("ops")).status_code == 200
    listing = client.get("/api/v1/campaigns", headers=m.headers("b-two")).json()
    assert [c["name"] for c in listing["campaigns"]] == ["camp-two"]
    everything = client.get("/api/v1/campaigns", headers=m.headers("ops")).json()
    assert {c["name"] for c in everything["campaigns"]} == {"camp-one", "camp-two"}
    # a buyer's own campaign without a validation run: 404 with its own words, after the tenancy check
    assert client.get("/api/v1/campaigns/camp-one/validation", headers=m.headers("b-one")).status_code == 404
    _uniform(client.get("/api/v1/campaigns/camp-one/validation", headers=m.headers("b-two")), "campaign", "camp-one")


def test_selection_and_report_are_the_buyers(market_client: tuple[TestClient, Market]) -> None:
    client, m = market_client
    sel = client.get("/api/v1/campaigns/camp-one/selection?top=0.5", headers=m.headers("b-one"))
    assert sel.status_code == 200 and sel.headers["content-type"].startswith("application/x-ndjson")
    lines = sel.text.splitlines()
    assert len(lines) == 3 and int(sel.headers["x-selected-rows"]) == 3  # ceil(0.5 * 6 unique samples)
    report = client.get("/api/v1/campaigns/camp-one/report", headers=m.headers("b-one")).json()
    assert report["campaign_name"] == "camp-one" and report["allocated_minor"] == 100_000
    page = client.get("/api/v1/campaigns/camp-one/report?format=html", headers=m.headers("b-one"))
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_roles_get_403_on_endpoints_that_are_not_theirs(market_client: tuple[TestClient, Market]) -> None:
    client, m = market_client
    provider_only = [("POST", "/api/v1/submissions")]
    buyer_or_operator = [("GET", "/api/v1/campaigns"), ("POST", "/api/v1/campaigns"),
                         *[("GET", p.format(ref="camp-one")) for p in CAMPAIGN_PATHS]]
    provider_or_operator = [("GET", "/api/v1/submissions"),
                            ("GET", f"/api/v1/submissions/{m.submission_ids['alice'][0]}"),
                            ("GET", "/api/v1/statements/2026-11"), ("GET", "/api/v1/balance")]
    operator_only = [("POST", "/api/v1/campaigns/camp-one/revalue"), ("GET", "/api/v1/audit"),
                     ("GET", "/api/v1/ledger/verify"), ("GET", "/api/v1/runs/abc")]
    forbidden = {
        "alice": buyer_or_operator + operator_only,
        "b-one": provider_only + provider_or_operator + operator_only,
        "ops": provider_only,
    }
    for who, endpoints in forbidden.items():
        for method, path in endpoints:
            r = client.request(method, path, headers=m.headers(who))
            assert r.status_code == 403, (who, method, path, r.status_code, r.text)
            assert r.json()["error"] == "forbidden" and "camp-one" not in r.json()["detail"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(submission_id=st.integers(min_value=-5, max_value=60))
def test_a_provider_reaches_only_its_own_submissions(market_client: tuple[TestClient, Market],
                                                     submission_id: int) -> None:
    client, m = market_client
    r = client.get(f"/api/v1/submissions/{submission_id}", headers=m.headers("bob"))
    if submission_id in m.submission_ids["bob"]:
        assert r.status_code == 200 and r.json()["provider"] == "bob"
    else:
        _uniform(r, "submission", str(submission_id))
    assert leaks(r.content, ["alice", "carol", *m.texts["alice"]]) == []
    ops = client.get(f"/api/v1/submissions/{submission_id}", headers=m.headers("ops"))
    assert ops.status_code == (200 if any(submission_id in ids for ids in m.submission_ids.values()) else 404)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ref=st.one_of(st.integers(min_value=0, max_value=30).map(str), st.integers(0, 30).map(lambda i: f"id:{i}"),
                     st.sampled_from(["camp-one", "camp-two", "CAMP-ONE", "camp one", "nobody"])))
def test_a_buyer_reaches_only_its_own_campaigns(market_client: tuple[TestClient, Market], ref: str) -> None:
    client, m = market_client
    own_id = m.campaign_ids["camp-two"]
    mine = ref in ("camp-two", str(own_id), f"id:{own_id}")
    for path in CAMPAIGN_PATHS[:2]:
        r = client.get(path.format(ref=ref), headers=m.headers("b-two"))
        if mine:
            assert r.status_code in (200, 404) and "camp-one" not in r.text  # camp-two is not priced: no report
        else:
            _uniform(r, "campaign", ref)
    revalue = client.post(f"/api/v1/campaigns/{ref}/revalue", headers=m.headers("b-two"))
    assert revalue.status_code == 403  # the role first: a buyer never learns whether the campaign exists


def test_provider_data_by_name_is_the_callers_own(market_client: tuple[TestClient, Market]) -> None:
    client, m = market_client
    for path in ("/api/v1/submissions?provider=alice", "/api/v1/statements/2026-11?provider=alice",
                 "/api/v1/balance?provider=alice", "/api/v1/balance?provider=nobody"):
        who = path.split("provider=")[1]
        _uniform(client.get(path, headers=m.headers("bob")), "provider", who)
    for path in ("/api/v1/submissions?provider=alice", "/api/v1/statements/2026-11?provider=alice",
                 "/api/v1/balance?provider=alice"):
        assert client.get(path, headers=m.headers("ops")).status_code == 200
    missing = client.get("/api/v1/balance", headers=m.headers("ops"))
    assert missing.status_code == 422 and "provider=NAME" in missing.json()["detail"]


def test_responses_never_show_another_providers_names_texts_or_amounts(
        market_client: tuple[TestClient, Market]) -> None:
    client, m = market_client
    alice_balance = client.get("/api/v1/balance", headers=m.headers("alice")).json()
    alice_owed = alice_balance["balances"][0]["amount_minor"]
    assert alice_owed > 0 and alice_balance["provider"] == "alice"
    bob_views = [client.get(p, headers=m.headers("bob")) for p in (
        "/api/v1/submissions", f"/api/v1/submissions/{m.submission_ids['bob'][0]}", "/api/v1/balance",
        "/api/v1/statements/2026-11", "/api/v1/statements/2026-11?format=html",
        *(f"/api/v1/statements/2026-11?format=csv&table={t}" for t in ("transactions", "submissions", "samples",
                                                                        "files")))]
    assert all(r.status_code == 200 for r in bob_views), [r.text for r in bob_views if r.status_code != 200]
    secrets = ["alice", "carol", "alice-data.jsonl", *m.texts["alice"], str(alice_owed)]
    for r in bob_views:
        assert leaks(r.content, secrets) == [], r.request.url
    # carol copied alice's file: she learns it was already in the market, never whose
    carol = client.get(f"/api/v1/submissions/{m.submission_ids['carol'][0]}", headers=m.headers("carol"))
    body = carol.json()
    assert body["submission"]["status"] == "copy" and "already in the market" in carol.text
    assert leaks(carol.content, ["alice", "alice-data.jsonl", "copy_of", "duplicate_of"]) == []
    statement = client.get("/api/v1/statements/latest", headers=m.headers("carol")).json()
    assert statement["closing_minor"] == 0 and leaks(str(statement), ["alice"]) == []


def test_operator_reads_the_audit_trail_and_verifies_the_ledger(market_client: tuple[TestClient, Market]) -> None:
    client, m = market_client
    verify = client.get("/api/v1/ledger/verify", headers=m.headers("ops")).json()
    assert verify["ok"] is True
    events = client.get("/api/v1/audit?limit=50", headers=m.headers("ops")).json()["events"]
    assert {"priced", "principal_created"} <= {e["action"] for e in events}
    runtime.reset()


def test_validation_is_the_newest_report_of_the_buyers_campaign(market_client: tuple[TestClient, Market]) -> None:
    client, m = market_client
    folder = client.app.state.settings.resolved_artifacts_dir / "validation"  # type: ignore[attr-defined]
    folder.mkdir(parents=True)
    camp = m.campaign_ids["camp-one"]
    for run in (3, 12):
        (folder / f"validation_campaign{camp}_run{run}.json").write_text(f'{{"pricing_run_id": {run}}}')
    (folder / f"validation_campaign{camp}_run99.html").write_text("<p>not the json</p>")
    (folder / f"validation_campaign{camp}1_run50.json").write_text('{"pricing_run_id": 50}')  # another campaign
    r = client.get("/api/v1/campaigns/camp-one/validation", headers=m.headers("b-one"))
    assert r.status_code == 200 and r.json() == {"pricing_run_id": 12}
    _uniform(client.get("/api/v1/campaigns/camp-one/validation", headers=m.headers("b-two")), "campaign", "camp-one")
