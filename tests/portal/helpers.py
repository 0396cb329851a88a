"""Helpers of the portal tests: a client on the API test market, signing in through the form, the CSRF value of
a page, a stand-in model registry, and the checks every portal page must pass."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from marketplace.api import ApiLimits
from marketplace.api.portal.security import CSP
from tests.support.api import Market, api_client, api_settings, build_market

__all__ = ["FakeRegistry", "PortalMarket", "assert_no_inline_code", "assert_portal_headers", "csrf_of",
           "portal_market", "sign_in"]

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class FakeVersion:
    version: str
    aliases: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str = "run-1"
    source: str = ""


class FakeRegistry:
    """The registry's two reads the operator page makes: every campaign's model has version 1 as champion."""

    def list_versions(self, model_name: str) -> list[FakeVersion]:
        return [FakeVersion("1", ["champion"], {"approx_spearman": 0.875})]

    def aliases(self, model_name: str) -> dict[str, str]:
        return {"champion": "1"}


@dataclass
class PortalMarket:
    client: TestClient
    market: Market
    factory: sessionmaker[Session]
    settings: Any


@contextmanager
def portal_market(tmp_path: Path, db_url: str, *, limits: ApiLimits | None = None) -> Iterator[PortalMarket]:
    """The API tests' priced market (alice, bob, carol; b-one owns camp-one, b-two camp-two; ops) behind the
    portal, with a stand-in registry."""
    cfg = api_settings(tmp_path, db_url)
    with api_client(cfg, limits=limits) as client:
        app: Any = client.app
        app.state.portal.state.model_registry = FakeRegistry
        factory = app.state.session_factory
        yield PortalMarket(client, build_market(factory), factory, cfg)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no csrf field on the page"
    return found.group(1)


def sign_in(client: TestClient, token: str, next_path: str = "") -> Any:
    """Sign in through the form (the sign-in page's cookie and CSRF value); returns the POST's response."""
    client.cookies.clear()
    form = client.get("/portal/sign-in")
    assert form.status_code == 200
    return client.post("/portal/sign-in", data={"token": token, "csrf": csrf_of(form.text), "next": next_path},
                       follow_redirects=False)


def assert_portal_headers(response: Any, *, cached: bool = False) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    if not cached:
        assert response.headers["cache-control"] == "no-store"


_INLINE = [re.compile(p, re.IGNORECASE) for p in (r"<script(?![^>]*\ssrc=)[^>]*>", r"<style", r"<[a-z][^>]*\sstyle=",
                                                  r"<[a-z][^>]*\son[a-z]+\s*=", r"<[a-z][^>]*javascript:")]


def assert_no_inline_code(html: str) -> None:
    """No inline script, style element, style attribute, event handler or javascript: URL."""
    for pattern in _INLINE:
        assert not pattern.search(html), f"inline code on a portal page: {pattern.pattern}"
