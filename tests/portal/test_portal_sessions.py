"""Portal sessions: the cookie's rules, only a hash stored, sign-out, rotation and revocation ending a session at
once, expiry, CSRF on every form, and failed sign-ins counting toward the API's failed-authentication limit."""

from __future__ import annotations

import datetime as dt
from http.cookies import SimpleCookie
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from marketplace.api import ApiLimits
from marketplace.api.portal.sessions import close_session, csrf_matches, csrf_token, open_session, signed_in
from marketplace.db import Submission, utcnow
from marketplace.db.portal_sessions import PortalSession
from marketplace.principals import hash_token, revoke_principal, rotate_token
from tests.portal.helpers import csrf_of, portal_market, sign_in
from tests.support.api import bearer, jsonl


def _cookie(response: object, name: str) -> SimpleCookie:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    jar: SimpleCookie = SimpleCookie()
    for h in headers:
        if h.startswith(f"{name}="):
            jar.load(h)
    assert name in jar, f"no {name} cookie in {headers}"
    return jar


def _sessions(factory: object) -> list[PortalSession]:
    with factory() as s:  # type: ignore[operator]
        return list(s.scalars(select(PortalSession)))


def test_sign_in_sets_a_strict_http_only_cookie_and_stores_only_its_hash(tmp_path: Path, db_url: str) -> None:
    with portal_market(tmp_path, db_url) as pm:
        signed = sign_in(pm.client, pm.market.tokens["alice"])
        assert signed.status_code == 303 and signed.headers["location"] == "/portal/provider"
        jar = _cookie(signed, "mkt_session")
        morsel = jar["mkt_session"]
        raw = signed.headers["set-cookie"].lower()
        assert morsel["httponly"] and morsel["samesite"].lower() == "strict" and morsel["path"] == "/"
        assert not morsel["secure"], "plain http: a Secure cookie would never come back"
        assert 7 * 3600 < int(morsel["max-age"]) <= 8 * 3600 and "expires=" in raw
        rows = _sessions(pm.factory)
        assert len(rows) == 1
        assert rows[0].session_hash == hash_token(morsel.value) and morsel.value not in rows[0].session_hash
        page = pm.client.get("/portal/provider")
        assert page.status_code == 200 and "alice" in page.text

        https = TestClient(pm.client.app, base_url="https://testserver")
        over_tls = sign_in(https, pm.market.tokens["bob"])
        assert _cookie(over_tls, "mkt_session")["mkt_session"]["secure"]


def test_sign_out_deletes_the_session_and_the_old_cookie_stops_working(tmp_path: Path, db_url: str) -> None:
    with portal_market(tmp_path, db_url) as pm:
        sign_in(pm.client, pm.market.tokens["b-one"])
        cookie = pm.client.cookies["mkt_session"]
        page = pm.client.get("/portal/buyer")
        out = pm.client.post("/portal/sign-out", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/portal/sign-in"
        assert 'mkt_session=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
        assert _sessions(pm.factory) == []
        pm.client.cookies.set("mkt_session", cookie)
        again = pm.client.get("/portal/buyer", follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"].startswith("/portal/sign-in")


def test_rotating_or_revoking_ends_the_sessions_at_once(tmp_path: Path, db_url: str) -> None:
    with portal_market(tmp_path, db_url) as pm:
        alice = TestClient(pm.client.app)
        bob = TestClient(pm.client.app)
        sign_in(alice, pm.market.tokens["alice"])
        sign_in(bob, pm.market.tokens["bob"])
        assert alice.get("/portal/provider").status_code == 200 and bob.get("/portal/provider").status_code == 200
        csrf = csrf_of(bob.get("/portal/provider").text)
        with pm.factory() as s, s.begin():
            rotate_token(s, "alice", "provider")
            revoke_principal(s, "bob", "provider")
        for client in (alice, bob):
            page = client.get("/portal/provider", follow_redirects=False)
            assert page.status_code == 303 and page.headers["location"] == "/portal/sign-in?next=%2Fportal%2Fprovider"
        with pm.factory() as s:
            before = s.scalar(select(func.count()).select_from(Submission))
        post = bob.post("/portal/provider/upload", data={"csrf": csrf},
                        files={"file": ("late.jsonl", jsonl([{"text": "after the revocation"}]))})
        assert post.status_code == 401 and "sign in" in post.text.lower()
        with pm.factory() as s:
            assert s.scalar(select(func.count()).select_from(Submission)) == before
        # the rotated-away token cannot sign in again either
        assert sign_in(TestClient(pm.client.app), pm.market.tokens["alice"]).status_code == 401


def test_sessions_expire_and_expired_rows_are_removed_at_the_next_sign_in(session_factory: object) -> None:
    from tests.support.api import make_token

    token = make_token(session_factory, "provider", "expiring")  # type: ignore[arg-type]
    past = utcnow() - dt.timedelta(hours=9)
    with session_factory() as s, s.begin():  # type: ignore[operator]
        old = open_session(s, token, now=past)
        assert old is not None
    with session_factory() as s:  # type: ignore[operator]
        assert signed_in(s, old.session_id, now=past + dt.timedelta(hours=7, minutes=59)) is not None
        assert signed_in(s, old.session_id) is None  # 8 h after sign-in
        assert signed_in(s, "forged" + old.session_id[6:]) is None and signed_in(s, None) is None
    with session_factory() as s, s.begin():  # type: ignore[operator]
        fresh = open_session(s, token)
        assert fresh is not None and open_session(s, "mkt_" + "x" * 43) is None
    rows = _sessions(session_factory)
    assert [r.session_hash for r in rows] == [hash_token(fresh.session_id)]
    with session_factory() as s, s.begin():  # type: ignore[operator]
        assert close_session(s, fresh.session_id) and not close_session(s, fresh.session_id)


def test_csrf_tokens_are_per_session_and_constant_time_checked() -> None:
    a, b = "session-a" * 4, "session-b" * 4
    assert csrf_token(a) != csrf_token(b) and len(csrf_token(a)) == 64
    assert csrf_matches(a, csrf_token(a))
    assert not csrf_matches(a, csrf_token(b)) and not csrf_matches(a, "") and not csrf_matches(a, None)


def test_a_post_without_the_right_csrf_token_is_403_and_writes_nothing(tmp_path: Path, db_url: str) -> None:
    with portal_market(tmp_path, db_url) as pm:
        other = TestClient(pm.client.app)
        sign_in(other, pm.market.tokens["bob"])
        foreign = csrf_of(other.get("/portal/provider").text)
        sign_in(pm.client, pm.market.tokens["alice"])
        data = jsonl([{"text": "a record that must not be ingested without the form's token"}])
        with pm.factory() as s:
            before = s.scalar(select(func.count()).select_from(Submission))
        for fields in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": foreign}):
            sent = pm.client.post("/portal/provider/upload", data=fields, files={"file": ("x.jsonl", data)})
            assert sent.status_code == 403, (fields, sent.text)
            assert "security token" in sent.text
        out = pm.client.post("/portal/sign-out", data={"csrf": foreign}, follow_redirects=False)
        assert out.status_code == 403 and len(_sessions(pm.factory)) == 2
        with pm.factory() as s:
            assert s.scalar(select(func.count()).select_from(Submission)) == before
        # the sign-in form: its value must match its cookie
        form = pm.client.get("/portal/sign-in")
        pm.client.cookies.clear()
        no_cookie = pm.client.post("/portal/sign-in", data={"token": pm.market.tokens["alice"],
                                                            "csrf": csrf_of(form.text)}, follow_redirects=False)
        assert no_cookie.status_code == 403 and len(_sessions(pm.factory)) == 2


def test_failed_sign_ins_count_toward_the_failed_authentication_limit(tmp_path: Path, db_url: str) -> None:
    with portal_market(tmp_path, db_url, limits=ApiLimits(auth_failures=3)) as pm:
        form = pm.client.get("/portal/sign-in")
        for _ in range(3):
            form = pm.client.post("/portal/sign-in", data={"token": "mkt_" + "A" * 43, "csrf": csrf_of(form.text)},
                                  follow_redirects=False)
            assert form.status_code == 401 and "not valid" in form.text
            assert "mkt_session" not in form.headers.get("set-cookie", "")
        blocked = pm.client.post("/portal/sign-in", data={"token": pm.market.tokens["alice"],
                                                          "csrf": csrf_of(form.text)}, follow_redirects=False)
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert "too many failed authentications" in blocked.text
        assert pm.client.get("/portal/sign-in").status_code == 429
        assert pm.client.get("/api/v1/balance", headers=bearer(pm.market.tokens["alice"])).status_code == 429
        assert _sessions(pm.factory) == []
