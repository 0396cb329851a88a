"""The API's routes as the tests enumerate them: every (method, path) that authenticates with a bearer token,
with its parameter names, so a test can require a case for each route (a new route cannot be forgotten)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from marketplace.api.app import API_PREFIX
from marketplace.api.auth import current_caller

__all__ = ["bearer_routes", "fill_path"]


def _route_table(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, path, route) for every API route, prefixes of included routers applied."""
    try:  # FastAPI >= 0.150 keeps included routers as such; this walks through them
        from fastapi.routing import iter_route_contexts

        contexts: Iterator[Any] = iter_route_contexts(app.routes)
    except ImportError:  # older FastAPI: included routes are copied into app.routes
        contexts = iter(app.routes)
    for ctx in contexts:
        route = getattr(ctx, "original_route", ctx)
        if isinstance(route, APIRoute):
            for method in sorted(ctx.methods or ()):
                yield method, str(ctx.path), route


def _parameters(route: APIRoute) -> tuple[set[str], set[Any]]:
    """Every parameter name of a route (its dependencies' too) and every dependency it calls."""
    names: set[str] = set()
    calls: set[Any] = set()
    todo = [route.dependant]
    while todo:
        dep = todo.pop()
        for group in (dep.path_params, dep.query_params, dep.header_params, dep.cookie_params, dep.body_params):
            names.update(p.name for p in group)
        calls.update(d.call for d in dep.dependencies)
        todo.extend(dep.dependencies)
    return names, calls


def bearer_routes(app: FastAPI) -> dict[tuple[str, str], set[str]]:
    """(method, path) -> parameter names, for every route that authenticates with a bearer token
    (:func:`marketplace.api.auth.current_caller`). Fails on a route under the API prefix without one."""
    out = {}
    for method, path, route in _route_table(app):
        names, calls = _parameters(route)
        if current_caller in calls:
            out[(method, path)] = names
        else:
            assert not path.startswith(API_PREFIX), f"{method} {path} is under {API_PREFIX} without a token check"
    return out


def fill_path(path: str, value: str = "1") -> str:
    """``path`` with every ``{param}`` replaced by ``value``."""
    import re

    return re.sub(r"\{[^}]+\}", value, path)
