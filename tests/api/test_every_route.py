"""Rules that hold for every route, enumerated from the app so a new route is covered or fails: no token, a
forged one and a revoked one are each a 401 before anything else is looked at; and on every POST that takes
an ``Idempotency-Key``, the same key with another request is a 409 that does nothing."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from marketplace.api import ApiLimits
from marketplace.db import AuditEvent, Campaign, Submission
from marketplace.principals import TOKEN_PREFIX, revoke_principal
from tests.support.api import api_client, api_settings, bearer, jsonl, make_token
from tests.support.catalog import make_campaign
from tests.support.routes import bearer_routes, fill_path


@pytest.fixture
def client(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    limits = ApiLimits(auth_failures=10_000)  # this test fails authentication on purpose, many times
    with api_client(api_settings(tmp_path, db_url), limits=limits) as c:
        yield c


def _factory(client: TestClient) -> Any:
    return client.app.state.session_factory  # type: ignore[attr-defined]


def test_every_route_refuses_a_missing_forged_or_revoked_token(client: TestClient) -> None:
    factory = _factory(client)
    revoked = make_token(factory, "operator", "gone")
    with factory() as s, s.begin():
        revoke_principal(s, "gone")
    no_token: dict[str, str] = {}
    tokens = {"none": no_token, "forged": bearer(TOKEN_PREFIX + secrets.token_urlsafe(32)),
              "malformed": bearer("not-a-token"), "revoked": bearer(revoked)}
    routes = bearer_routes(client.app)  # type: ignore[arg-type]
    assert len(routes) >= 15
    for method, path in sorted(routes):
        for what, headers in tokens.items():
            r = client.request(method, fill_path(path), headers=headers)
            where = (method, path, what, r.status_code, r.text[:200])
            assert r.status_code == 401, where  # before the role, the object, the body or its validation
            assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer", where


def _model(client: TestClient) -> str:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    folder = settings.resolved_models_dir / "tiny-target"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (folder / "model.safetensors").write_bytes(os.urandom(64))
    return folder.name


Send = Callable[[TestClient, dict[str, str], int], Any]  # one variant (0 or 1) of a route's request
Count = Callable[[TestClient], int]  # what the route writes, counted


def _cases(client: TestClient) -> dict[tuple[str, str], tuple[str, Send, Count]]:
    """Per idempotent POST route: the role that may call it, two different requests, and what it writes."""
    factory = _factory(client)
    with factory() as s, s.begin():
        make_campaign(s, name="camp")
    model = _model(client)
    target = jsonl([{"text": "target data on balanced books and the postings behind every credit"}])

    def count(entity: Any, **where: Any) -> Count:
        def n(c: TestClient) -> int:
            with _factory(c)() as s:
                stmt = select(func.count()).select_from(entity)
                for key, value in where.items():
                    stmt = stmt.where(getattr(entity, key) == value)
                return int(s.scalar(stmt) or 0)

        return n

    def upload(c: TestClient, headers: dict[str, str], variant: int) -> Any:
        data = jsonl([{"text": f"variant {variant}: a sourdough starter asks for flour, water, warmth and time"}])
        return c.post("/api/v1/submissions", headers=headers, files={"file": ("data.jsonl", data)})

    def campaign(c: TestClient, headers: dict[str, str], variant: int) -> Any:
        return c.post("/api/v1/campaigns", headers=headers, files={"target_data": ("target.jsonl", target)},
                      data={"name": "keyed", "budget": f"{10 + variant}.00", "target_model": model})

    def revalue(c: TestClient, headers: dict[str, str], variant: int) -> Any:
        return c.post("/api/v1/campaigns/camp/revalue", headers=headers, json={"period": f"2026-{10 + variant}"})

    return {
        ("POST", "/api/v1/submissions"): ("provider", upload, count(Submission)),
        ("POST", "/api/v1/campaigns"): ("buyer", campaign, count(Campaign)),
        ("POST", "/api/v1/campaigns/{name}/revalue"): ("operator", revalue,
                                                       count(AuditEvent, action="revalue_requested")),
    }


def test_a_key_reused_with_another_request_is_409_on_every_idempotent_post(client: TestClient) -> None:
    routes = bearer_routes(client.app)  # type: ignore[arg-type]
    keyed = {route for route, params in routes.items() if "idempotency_key" in params}
    cases = _cases(client)
    assert keyed == set(cases), "every POST that takes an Idempotency-Key needs a case here"
    for route, (role, send, written) in cases.items():
        headers = {**bearer(make_token(_factory(client), role, f"{role}-{len(route[1])}")), "Idempotency-Key": "k-1"}
        first = send(client, headers, 0)
        assert first.status_code in (201, 202), (route, first.text)
        before = written(client)
        other = send(client, headers, 1)
        assert other.status_code == 409 and other.json()["error"] == "conflict", (route, other.text)
        assert "different request" in other.json()["detail"] and "idempotent-replayed" not in other.headers
        assert written(client) == before, route  # the refused request wrote nothing
        again = send(client, headers, 0)
        assert again.status_code == first.status_code and again.json() == first.json(), route
        assert again.headers["idempotent-replayed"] == "true" and written(client) == before, route
    client.app.state.revalue_launcher.wait(60)  # type: ignore[attr-defined]
