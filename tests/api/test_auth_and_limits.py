"""401 (no token, forged, malformed, revoked, rotated away), 429 after repeated failures, 413 by declared and
by streamed size and for an uploaded file, and errors that are one JSON line without a trace."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from marketplace.api import ApiLimits
from marketplace.api.auth import FailedAuthLimiter
from marketplace.api.errors import TooManyRequestsError
from marketplace.principals import TOKEN_PREFIX, revoke_principal, rotate_token
from tests.support.api import api_client, api_settings, bearer, jsonl, make_token


@pytest.fixture
def client(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    limits = ApiLimits(max_body_bytes=2048, max_upload_bytes=4096, auth_failures=3)
    with api_client(api_settings(tmp_path, db_url), limits=limits) as c:
        yield c


def _factory(client: TestClient) -> Any:
    return client.app.state.session_factory  # type: ignore[attr-defined]


def _unauthorized(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
    assert "Traceback" not in r.text


def test_missing_forged_malformed_revoked_and_rotated_tokens_are_401(client: TestClient) -> None:
    factory = _factory(client)
    token = make_token(factory, "provider", "acme")
    assert client.get("/api/v1/submissions", headers=bearer(token)).status_code == 200
    _unauthorized(client.get("/api/v1/submissions"))
    _unauthorized(client.get("/api/v1/submissions", headers={"Authorization": f"Basic {token}"}))
    forged = TOKEN_PREFIX + secrets.token_urlsafe(32)
    _unauthorized(client.get("/api/v1/submissions", headers=bearer(forged)))
    with factory() as s, s.begin():
        new = rotate_token(s, "acme").token
    _unauthorized(client.get("/api/v1/submissions", headers=bearer(token)))  # rotated away
    assert client.get("/api/v1/submissions", headers=bearer(new)).status_code == 200
    with factory() as s, s.begin():
        revoke_principal(s, "acme")
    _unauthorized(client.get("/api/v1/submissions", headers=bearer(new)))


def test_repeated_failures_from_one_address_are_429_even_with_a_good_token(client: TestClient) -> None:
    good = make_token(_factory(client), "operator", "ops")
    for _ in range(3):
        _unauthorized(client.get("/api/v1/audit", headers=bearer(TOKEN_PREFIX + "x" * 43)))
    blocked = client.get("/api/v1/audit", headers=bearer(good))
    assert blocked.status_code == 429 and blocked.json()["error"] == "too_many_requests"
    assert int(blocked.headers["retry-after"]) >= 1
    assert client.get("/healthz").status_code == 200  # no token, no limit


def test_the_limiter_forgets_failures_after_its_window() -> None:
    now = [0.0]
    limiter = FailedAuthLimiter(2, 60.0, clock=lambda: now[0])
    limiter.fail("10.0.0.1")
    limiter.fail("10.0.0.1")
    with pytest.raises(TooManyRequestsError):
        limiter.check("10.0.0.1")
    limiter.check("10.0.0.2")  # another address is not affected
    now[0] = 60.0
    limiter.check("10.0.0.1")


def test_bodies_over_the_limit_are_413_declared_or_streamed(client: TestClient) -> None:
    ops = bearer(make_token(_factory(client), "operator", "ops"))
    big = b'{"period": "' + b"x" * 5000 + b'"}'
    declared = client.post("/api/v1/campaigns/x/revalue", content=big,
                           headers={**ops, "content-type": "application/json"})
    assert declared.status_code == 413 and declared.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        yield b'{"period": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}'

    streamed = client.post("/api/v1/campaigns/x/revalue", content=chunks(),
                           headers={**ops, "content-type": "application/json"})
    assert streamed.status_code == 413 and streamed.json()["error"] == "payload_too_large"


def test_an_uploaded_file_over_the_limit_is_413_and_writes_nothing(client: TestClient) -> None:
    token = make_token(_factory(client), "provider", "acme")
    data = jsonl([{"text": f"record number {i} of a file that is much too large for this service"}
                  for i in range(200)])
    assert 4096 < len(data) < 4096 + 64 * 1024  # within the body limit: the file's own limit refuses it
    r = client.post("/api/v1/submissions", headers=bearer(token), files={"file": ("big.jsonl", data)})
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large", r.text
    assert client.get("/api/v1/submissions", headers=bearer(token)).json()["submissions"] == []


def test_errors_are_one_json_line_without_a_trace(tmp_path: Path, db_url: str) -> None:
    class Exploding:
        kind = "background"

        def start(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom in /secret/path")

        def get(self, run_id: str) -> None:
            return None

        def for_campaign(self, campaign_id: int) -> list[Any]:
            return []

    with api_client(api_settings(tmp_path, db_url), launcher=Exploding()) as c:
        from tests.support.catalog import make_campaign

        factory = _factory(c)
        with factory() as s, s.begin():
            make_campaign(s, name="camp")
        ops = bearer(make_token(factory, "operator", "ops"))
        unknown = c.get("/api/v1/nothing-here", headers=ops)
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
        invalid = c.get("/api/v1/campaigns/camp/selection?top=7", headers=ops)
        assert invalid.status_code == 422 and set(invalid.json()) == {"error", "detail"}
        assert "top" in invalid.json()["detail"]
        bad_period = c.post("/api/v1/campaigns/camp/revalue", json={"period": "1999-13"}, headers=ops)
        assert bad_period.status_code == 422 and "\n" not in bad_period.json()["detail"]
        crash = c.post("/api/v1/campaigns/camp/revalue", json={}, headers=ops)
        assert crash.status_code == 500 and crash.json()["error"] == "internal"
        assert "boom" not in crash.text and "Traceback" not in crash.text and "reference" in crash.json()["detail"]
        for r in (unknown, invalid, bad_period, crash):
            assert r.headers["x-content-type-options"] == "nosniff"
        health = c.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
        assert c.get("/docs").status_code == 200 and "/api/v1/submissions" in c.get("/openapi.json").text
