"""The HTTP API application: ``create_app(settings)`` wires the routes, the limits, the error handlers.

Versioned under ``/api/v1``; ``Authorization: Bearer TOKEN`` on every route but ``GET /healthz``;
OpenAPI at ``/docs`` (and ``/openapi.json``). Routes call the same core functions as the CLI and the
flows (the shared edge, :mod:`marketplace.runtime`, gives the session factory and the ingestion
parameters). docs/api.md describes the endpoints, the authorization rules and the limits.

The web portal (:mod:`marketplace.api.portal`) is mounted under ``/portal`` with its own pages, errors and
headers; ``/`` redirects there.

Layers (inside out): the routes; their errors turned into JSON by the exception handlers; the request-size
limit (413); the timeout (504); the last-resort handler (500 without a trace). Every response carries
:data:`marketplace.api.responses.SECURITY_HEADERS`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace import runtime
from marketplace.api.auth import FailedAuthLimiter
from marketplace.api.config import MULTIPART_OVERHEAD_BYTES, ApiLimits
from marketplace.api.errors import TooManyRequestsError, error_body, error_parts
from marketplace.api.middleware import BodyLimitMiddleware, CatchAllMiddleware, TimeoutMiddleware
from marketplace.api.portal import PORTAL_UPLOAD_PATH, mount_portal
from marketplace.api.responses import SECURITY_HEADERS
from marketplace.api.runs import BackgroundRevalue, RevalueLauncher
from marketplace.errors import MarketplaceError
from marketplace.settings import Settings

__all__ = ["API_PREFIX", "UPLOAD_PATHS", "create_app"]

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"
UPLOAD_PATHS = frozenset({f"{API_PREFIX}/submissions", f"{API_PREFIX}/campaigns", PORTAL_UPLOAD_PATH})
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "invalid", 429: "too_many_requests"}


class _SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *(h for h in self._headers if h[0] not in present)]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _validation_detail(exc: RequestValidationError) -> str:
    """Pydantic's errors as one line: where and what, never the input itself."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MarketplaceError)
    async def marketplace_error(request: Request, exc: MarketplaceError) -> JSONResponse:
        status, body = error_parts(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        if isinstance(exc, TooManyRequestsError):
            headers["Retry-After"] = str(exc.retry_after)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(body, status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("invalid", _validation_detail(exc)), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint {request.method} {request.url.path}; /docs lists them"
        return JSONResponse(error_body(code, detail), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.error("database error in %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(error_body("unavailable", "the database is unavailable; retry later"), 503)


def create_app(settings: Settings | None = None, *, limits: ApiLimits | None = None,
               revalue_launcher: RevalueLauncher | None = None) -> FastAPI:
    """The API on ``settings``' store (default: this process's settings; the schema is brought up to date).

    ``revalue_launcher``: what ``POST /campaigns/{name}/revalue`` starts runs with (default: a
    :class:`~marketplace.api.runs.BackgroundRevalue` in this process's environment)."""
    cfg = settings or runtime.current_settings()
    lim = limits or ApiLimits()
    app = FastAPI(title="LLM data marketplace API", version="1",
                  description="Providers upload data and read their statements, buyers run campaigns, the operator "
                              "oversees. Authenticate with 'Authorization: Bearer TOKEN' (`marketplace principals "
                              "create`). Errors are JSON {\"error\", \"detail\"}.")
    app.state.settings = cfg
    app.state.limits = lim
    app.state.session_factory = runtime.session_factory(cfg)
    app.state.auth_limiter = FailedAuthLimiter(lim.auth_failures, lim.auth_window_s)
    app.state.revalue_launcher = revalue_launcher if revalue_launcher is not None else BackgroundRevalue()
    _install_error_handlers(app)

    from marketplace.api import routes_buyer, routes_operator, routes_provider

    @app.get("/healthz", tags=["meta"], summary="Liveness and database check (no token needed)")
    def healthz(request: Request) -> Any:
        try:
            with request.app.state.session_factory() as session:
                session.execute(text("SELECT 1"))
        except (OperationalError, InterfaceError):
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        return {"status": "ok", "database": "ok"}

    for module in (routes_provider, routes_buyer, routes_operator):
        app.include_router(module.router)
    mount_portal(app)  # the web portal under /portal (and / redirects there)

    upload_limit = min(lim.max_upload_bytes, runtime.ingest_limits(cfg).max_file_bytes) + MULTIPART_OVERHEAD_BYTES

    def limit_for(method: str, path: str) -> int:
        return upload_limit if method == "POST" and path.rstrip("/") in UPLOAD_PATHS else lim.max_body_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    app.add_middleware(TimeoutMiddleware, timeout_s=lim.request_timeout_s)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(_SecurityHeaders)
    return app
