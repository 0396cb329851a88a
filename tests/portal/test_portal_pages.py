"""Portal pages: the headers and no inline code on every page, hostile stored text shown inert, the API's
authorization (another tenant's object the same 404 as a missing one, a role's forbidden page 403, not signed
in: the sign-in page or 401), and each role's pages showing what the JSON API returns."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from marketplace.api import ApiLimits
from marketplace.db import AuditEvent, Campaign, Provider, QuarantinedRecord, Sample, Submission
from marketplace.money import Money
from marketplace.principals import principal_actor
from tests.portal.helpers import (
    PortalMarket,
    assert_no_inline_code,
    assert_portal_headers,
    csrf_of,
    portal_market,
    sign_in,
)
from tests.support.api import bearer, jsonl

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>\u202egnp.exe'


@pytest.fixture
def pm(tmp_path: Path) -> Iterator[PortalMarket]:
    """The market on SQLite: what a page shows does not depend on the engine."""
    with portal_market(tmp_path, f"sqlite:///{tmp_path / 'portal.db'}") as market:
        yield market


@pytest.fixture
def pm_both(tmp_path: Path, db_url: str) -> Iterator[PortalMarket]:
    """The market on both engines: tenancy and writes."""
    with portal_market(tmp_path, db_url) as market:
        yield market


def _client(pm: PortalMarket, who: str) -> TestClient:
    client = TestClient(pm.client.app)
    assert sign_in(client, pm.market.tokens[who]).status_code == 303
    return client


def _text_of(html: str) -> str:
    """The page's text with tags removed and whitespace collapsed (what a reader sees)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_every_page_has_the_headers_and_no_inline_code(pm: PortalMarket) -> None:
    alice, b_one, ops = _client(pm, "alice"), _client(pm, "b-one"), _client(pm, "ops")
    sub = pm.market.submission_ids["alice"][0]
    camp = pm.market.campaign_ids["camp-one"]
    pages = [(pm.client, "/portal/sign-in"), (alice, "/portal/provider"),
             (alice, f"/portal/provider/submissions/{sub}"), (alice, "/portal/provider/statements/2026-11"),
             (b_one, "/portal/buyer"), (b_one, f"/portal/buyer/campaigns/id:{camp}"), (ops, "/portal/operator"),
             (ops, "/portal/provider?provider=bob"), (alice, "/portal/buyer"), (alice, "/portal/no-such-page")]
    for client, path in pages:
        page = client.get(path)
        assert page.headers["content-type"].startswith("text/html"), path
        assert_portal_headers(page)
        assert_no_inline_code(page.text)
        assert '<link rel="stylesheet" href="/portal/static/portal.css">' in page.text
    for client, path in [(alice, "/portal/"), (pm.client, "/portal/operator")]:
        assert_portal_headers(client.get(path, follow_redirects=False))
    download = b_one.get(f"/portal/buyer/campaigns/id:{camp}/selection?top=0.5")
    assert_portal_headers(download)
    for asset, kind in (("portal.css", "text/css"), ("upload.js", "javascript")):
        got = pm.client.get(f"/portal/static/{asset}")
        assert got.status_code == 200 and kind in got.headers["content-type"]
        assert_portal_headers(got, cached=True)
        assert got.headers["cache-control"] == "public, max-age=3600"
    assert pm.client.get("/", follow_redirects=False).headers["location"] == "/portal/"


def test_hostile_stored_text_is_shown_inert(pm: PortalMarket) -> None:
    sub_a = pm.market.submission_ids["alice"][0]
    with pm.factory() as s, s.begin():
        s.execute(update(Submission).where(Submission.id == sub_a).values(filename=HOSTILE, n_quarantined=1,
                                                                         n_records=Submission.n_records + 1))
        s.add(QuarantinedRecord(submission_id=sub_a, record_index=9, location=f"line 10 {HOSTILE}",
                                reason_code="empty_text", detail=HOSTILE, excerpt=HOSTILE))
        s.execute(update(Sample).where(Sample.submission_id == sub_a).values(text=HOSTILE + " sample"))
        s.execute(update(Campaign).where(Campaign.name == "camp-one").values(name=HOSTILE))
        s.execute(update(Provider).where(Provider.name == "bob").values(name=HOSTILE))
    alice, b_one, ops = _client(pm, "alice"), _client(pm, "b-one"), _client(pm, "ops")
    camp = pm.market.campaign_ids["camp-one"]
    pages = [alice.get("/portal/provider"), alice.get(f"/portal/provider/submissions/{sub_a}"),
             alice.get("/portal/provider/statements/2026-11"), b_one.get("/portal/buyer"),
             b_one.get(f"/portal/buyer/campaigns/id:{camp}"), ops.get("/portal/operator")]
    for page in pages:
        assert page.status_code == 200, page.text
        html = page.text
        assert "<script>alert" not in html and "<img src=x" not in html and "\u202e" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&#34;&gt;&lt;img" in html.replace("&quot;", "&#34;")
        assert "\\u202egnp.exe" in html  # the bidi override is shown as its escape, never applied
        assert_no_inline_code(html)


def test_not_signed_in_goes_to_the_sign_in_page_and_other_methods_get_401(pm_both: PortalMarket) -> None:
    pm = pm_both
    page = pm.client.get("/portal/provider/statements/2026-11?provider=x", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/portal/sign-in?next=%2Fportal%2Fprovider%2Fstatements%2F2026-11%3Fprovider%3Dx"
    for path in ("/portal/provider/upload", "/portal/sign-out"):
        post = pm.client.post(path, data={"csrf": "x"}, files={"file": ("a.jsonl", b"{}")})
        assert post.status_code == 401 and "sign in" in post.text.lower()
    # after signing in, the page asked for first; never another site
    target = "/portal/provider/statements/2026-11"
    assert sign_in(pm.client, pm.market.tokens["alice"], target).headers["location"] == target
    for elsewhere in ("https://evil.example/", "//evil.example/portal/", "/portal/../api/v1/balance\\x"):
        assert sign_in(pm.client, pm.market.tokens["alice"], elsewhere).headers["location"] == "/portal/provider"


def test_roles_get_403_on_pages_that_are_not_theirs(pm_both: PortalMarket) -> None:
    pm = pm_both
    alice, b_one = _client(pm, "alice"), _client(pm, "b-one")
    camp = pm.market.campaign_ids["camp-one"]
    for client, path in [(alice, "/portal/buyer"), (alice, f"/portal/buyer/campaigns/id:{camp}"),
                         (alice, f"/portal/buyer/campaigns/id:{camp}/selection?top=0.5"), (alice, "/portal/operator"),
                         (b_one, "/portal/provider"), (b_one, "/portal/provider/statements/2026-11"),
                         (b_one, "/portal/operator")]:
        page = client.get(path)
        assert page.status_code == 403, path
        assert "this page is for" in page.text and "Not allowed" in page.text
    upload = b_one.post("/portal/provider/upload", data={"csrf": csrf_of(b_one.get("/portal/buyer").text)},
                        files={"file": ("a.jsonl", jsonl([{"text": "a buyer cannot upload"}]))})
    assert upload.status_code == 403


def _detail(page: object) -> str:
    found = re.search(r'<p class="error" role="alert">([^<]*)</p>', page.text)  # type: ignore[attr-defined]
    assert found is not None
    return html.unescape(found.group(1))


def test_another_tenants_object_is_the_same_404_as_a_missing_one(pm_both: PortalMarket) -> None:
    pm = pm_both
    alice, b_two = _client(pm, "alice"), _client(pm, "b-two")
    bob_sub, missing = pm.market.submission_ids["bob"][0], 999_999
    theirs = alice.get(f"/portal/provider/submissions/{bob_sub}")
    nothing = alice.get(f"/portal/provider/submissions/{missing}")
    assert theirs.status_code == nothing.status_code == 404
    assert _detail(theirs) == f"submission {str(bob_sub)!r} not found"
    assert _detail(nothing) == f"submission {str(missing)!r} not found"
    for query in ("?provider=bob", "?provider=no-such-provider"):
        page = alice.get(f"/portal/provider/statements/2026-11{query}")
        assert page.status_code == 404 and _detail(page) == f"provider {query.split('=')[1]!r} not found"
        assert alice.get(f"/portal/provider{query}").status_code == 404
    one = pm.market.campaign_ids["camp-one"]
    for ref in ("camp-one", f"id:{one}", str(one), "no-such-campaign"):
        for suffix in ("", "/selection?top=0.5"):
            page = b_two.get(f"/portal/buyer/campaigns/{ref}{suffix}")
            assert page.status_code == 404 and _detail(page) == f"campaign {ref!r} not found", (ref, suffix)
    listing = _text_of(b_two.get("/portal/buyer").text)
    assert "camp-two" in listing and "camp-one" not in listing
    for secret in ("bob", "bob-data.jsonl", *pm.market.texts["bob"]):
        assert secret not in _text_of(alice.get("/portal/provider").text)


def test_provider_pages_show_what_the_api_returns(pm: PortalMarket) -> None:
    alice = _client(pm, "alice")
    api = pm.client.get("/api/v1/balance", headers=bearer(pm.market.tokens["alice"])).json()
    page = alice.get("/portal/provider")
    text = _text_of(page.text)
    assert api["balances"] and all(b["amount"] in text for b in api["balances"])
    assert "Statement 2026-11" in text and "alice-data.jsonl" in text
    statement = alice.get("/portal/provider/statements/2026-11")
    api_statement = pm.client.get("/api/v1/statements/2026-11", headers=bearer(pm.market.tokens["alice"])).json()
    assert statement.status_code == 200
    assert len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,', statement.text)) == 2  # the two plots
    closing = str(Money(api_statement["closing_minor"], api_statement["currency"]))
    assert "Statement for alice" in statement.text and closing in _text_of(statement.text)
    for period in ("2025-01", "1999-01"):  # no postings: the core's error, which lists the periods that have some
        empty = alice.get(f"/portal/provider/statements/{period}")
        same = pm.client.get(f"/api/v1/statements/{period}", headers=bearer(pm.market.tokens["alice"]))
        assert empty.status_code == same.status_code >= 400 and _detail(empty) == same.json()["detail"]


def test_upload_runs_the_api_ingestion_shows_quarantine_and_is_audited(pm_both: PortalMarket) -> None:
    pm = pm_both
    alice = _client(pm, "alice")
    csrf = csrf_of(alice.get("/portal/provider").text)
    records = jsonl([{"text": f"a portal upload record number {i} about ledgers and postings"} for i in range(8)])
    records += b'{"text": ""}\n'
    sent = alice.post("/portal/provider/upload", data={"csrf": csrf}, files={"file": ("portal-upload.jsonl", records)},
                      follow_redirects=False)
    assert sent.status_code == 303, sent.text
    location = sent.headers["location"]
    assert re.fullmatch(r"/portal/provider/submissions/\d+\?uploaded=accepted", location)
    page = alice.get(location)
    text = _text_of(page.text)
    assert "Your file was accepted." in text and "portal-upload.jsonl" in text
    assert "line 9" in text and "empty_text" in text, text
    sub_id = int(location.split("/")[-1].split("?")[0])
    api = pm.client.get(f"/api/v1/submissions/{sub_id}", headers=bearer(pm.market.tokens["alice"])).json()
    assert api["submission"]["accepted"] == 8 and [q["location"] for q in api["quarantined"]] == ["line 9"]
    actor = principal_actor("provider", "alice", _principal_id(pm, "alice"))
    with pm.factory() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "ingested", AuditEvent.submission_id == sub_id))
        assert event is not None and event.actor == actor
    again = alice.post("/portal/provider/upload", data={"csrf": csrf}, files={"file": ("portal-upload.jsonl", records)},
                       follow_redirects=False)
    assert again.headers["location"] == f"/portal/provider/submissions/{sub_id}?uploaded=existing"


def _principal_id(pm: PortalMarket, name: str) -> int:
    from marketplace.db import Principal

    with pm.factory() as s:
        return int(s.scalar(select(Principal.id).where(Principal.name == name)))


def test_a_rejected_or_too_large_upload_is_a_page_and_writes_nothing(tmp_path: Path, db_url: str) -> None:
    with portal_market(tmp_path, db_url, limits=ApiLimits(max_upload_bytes=4096)) as pm:
        alice = _client(pm, "alice")
        csrf = csrf_of(alice.get("/portal/provider").text)
        with pm.factory() as s:
            before = s.scalar(select(func.count()).select_from(Submission))
        bad = alice.post("/portal/provider/upload", data={"csrf": csrf},
                         files={"file": ("broken.jsonl", b"not json at all\n" * 20)})
        assert bad.status_code == 422 and "broken.jsonl was not accepted" in bad.text
        assert 'id="upload-form"' in bad.text  # the dashboard again, with the form
        big = alice.post("/portal/provider/upload", data={"csrf": csrf},
                         files={"file": ("big.jsonl", jsonl([{"text": "x" * 100}] * 60))})
        assert big.status_code == 413 and "larger than 4096 bytes" in big.text
        with pm.factory() as s:
            assert s.scalar(select(func.count()).select_from(Submission)) == before


def test_buyer_pages_show_the_campaign_report_selection_and_validation(pm: PortalMarket) -> None:
    b_one = _client(pm, "b-one")
    camp = pm.market.campaign_ids["camp-one"]
    listing = b_one.get("/portal/buyer")
    assert f'href="/portal/buyer/campaigns/id:{camp}"' in listing.text
    page = b_one.get(f"/portal/buyer/campaigns/id:{camp}")
    text = _text_of(page.text)
    report = pm.client.get("/api/v1/campaigns/camp-one/report", headers=bearer(pm.market.tokens["b-one"])).json()
    for provider in report["providers"]:
        assert provider["provider_name"] in text
    assert "Value by provider" in text and "<svg" in page.text and "Top" in text
    assert "Not validated yet" in text
    download = b_one.get(f"/portal/buyer/campaigns/id:{camp}/selection?top=0.5")
    api = pm.client.get("/api/v1/campaigns/camp-one/selection?top=0.5", headers=bearer(pm.market.tokens["b-one"]))
    assert download.status_code == 200 and download.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in download.headers["content-disposition"]
    assert download.text == api.text and len(download.text.splitlines()) == 3
    assert b_one.get(f"/portal/buyer/campaigns/id:{camp}/selection?top=2").status_code == 422

    folder = pm.settings.resolved_artifacts_dir / "validation"
    folder.mkdir(parents=True)
    (folder / f"validation_campaign{camp}_run1.json").write_text(json.dumps({
        "pricing_run_id": 1, "period": "2026-11", "currency": "EUR", "headline": "adamw",
        "verdicts": [{"regime": "adamw", "description": "AdamW", "misallocated_share": 0.125, "harmful_share": 0.0}],
        "providers": [{"provider_name": "alice", "amount_minor": 500, "payout_share": 0.5,
                       "ideal_share": {"adamw": 0.4}}]}), encoding="utf-8")
    validated = _text_of(b_one.get(f"/portal/buyer/campaigns/id:{camp}").text)
    assert "Pricing run 1, period 2026-11" in validated and "12.5%" in validated


def test_operator_page_shows_runs_champions_ledger_and_the_audit_trail(pm: PortalMarket) -> None:
    ops = _client(pm, "ops")
    page = ops.get("/portal/operator")
    assert page.status_code == 200
    text = _text_of(page.text)
    assert "Every invariant of the books holds." in text
    assert "version 1" in text and "held-out Spearman 0.875" in text  # the registry's champion
    assert "camp-one" in text and "camp-two" in text and "Pricing runs" in text
    audit = pm.client.get("/api/v1/audit?limit=5", headers=bearer(pm.market.tokens["ops"])).json()["events"]
    assert all(e["action"] in text for e in audit)
    assert "principal_created" in text
    assert 'href="/portal/provider?provider=alice"' in page.text
    bob = ops.get("/portal/provider?provider=bob")
    assert bob.status_code == 200 and "bob-data.jsonl" in bob.text and 'id="upload-form"' not in bob.text
