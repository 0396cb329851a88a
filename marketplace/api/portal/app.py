"""The web portal, mounted under ``/portal`` of the API's app: server-rendered pages for providers, buyers and
the operator, on the same core functions, tenancy rules, limits and audit trail as the JSON API.

It is a sub-application so that its errors are pages (not JSON) and every response carries the portal's
headers (:mod:`marketplace.api.portal.security`); it shares the API app's settings, limits, session factory
and failed-authentication limiter. docs/api.md ("Portal") describes it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from marketplace.api.errors import TooManyRequestsError, error_parts
from marketplace.api.portal.deps import NotSignedIn
from marketplace.api.portal.security import SESSION_COOKIE, PortalHeaders, clear_cookie
from marketplace.api.portal.templating import PORTAL_PREFIX, STATIC_DIR, page
from marketplace.errors import MarketplaceError
from marketplace.settings import Settings

__all__ = ["PORTAL_PREFIX", "PORTAL_UPLOAD_PATH", "create_portal", "mount_portal"]

log = logging.getLogger(__name__)
PORTAL_UPLOAD_PATH = f"{PORTAL_PREFIX}/provider/upload"
_SHARED_STATE = ("settings", "limits", "session_factory", "auth_limiter", "revalue_launcher")
_TITLES = {400: "Bad request", 401: "Sign in first", 403: "Not allowed", 404: "Not found", 405: "Not allowed here",
           409: "Conflict", 413: "Too large", 422: "Cannot do that", 429: "Too many attempts", 500: "Server error",
           503: "Unavailable", 504: "Too slow"}


def _error_page(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    response = page(request, "error.html", status, title=_TITLES.get(status, "Error"), status=status, detail=detail)
    response.headers.update(headers or {})
    return response


def _sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"{PORTAL_PREFIX}/sign-in?next={quote(target, safe='')}", 303)
    if SESSION_COOKIE in request.cookies:  # expired, signed out elsewhere, or the token was rotated
        clear_cookie(response, request, SESSION_COOKIE)
    return response


def _install_error_pages(portal: FastAPI) -> None:
    @portal.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if request.method in ("GET", "HEAD"):
            return _sign_in_redirect(request)
        response = _error_page(request, 401, str(exc))
        if SESSION_COOKIE in request.cookies:
            clear_cookie(response, request, SESSION_COOKIE)
        return response

    @portal.exception_handler(MarketplaceError)
    async def marketplace_error(request: Request, exc: MarketplaceError) -> Response:
        status, body = error_parts(exc)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequestsError) else {}
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return _error_page(request, status, body["detail"], headers)

    @portal.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({str(e.get("loc", ("", "request"))[-1]) for e in exc.errors()})
        return _error_page(request, 422, f"check the value of {', '.join(fields)} and send it again")

    @portal.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and detail == "Not Found":
            detail = "there is no such page; start again from your dashboard"
        return _error_page(request, exc.status_code, detail)

    @portal.exception_handler(OperationalError)
    @portal.exception_handler(InterfaceError)
    async def database_down(request: Request, exc: Exception) -> Response:
        log.error("database error in %s %s: %s", request.method, request.url.path, exc)
        return _error_page(request, 503, "the database is unavailable; retry later")

    @portal.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        reference = uuid.uuid4().hex[:12]
        log.error("unexpected error in %s %s (reference %s)", request.method, request.url.path, reference,
                  exc_info=exc)
        return _error_page(request, 500, f"an unexpected error occurred (reference {reference}); the operator's "
                                         "server log has the details")


def _default_registry(settings: Settings) -> Callable[[], Any]:
    """The model registry of ``settings``, opened on first use (an MLflow store; the operator page's
    champions) and kept."""
    opened: list[Any] = []

    def registry() -> Any:
        if not opened:
            from marketplace import runtime

            opened.append(runtime.model_registry(settings))
        return opened[0]

    return registry


def create_portal(parent: FastAPI) -> FastAPI:
    """The portal application, sharing ``parent``'s state (settings, limits, session factory, limiter)."""
    from marketplace.api.portal import pages_auth, pages_buyer, pages_operator, pages_provider

    portal = FastAPI(title="LLM data marketplace portal", docs_url=None, redoc_url=None, openapi_url=None)
    for name in _SHARED_STATE:
        setattr(portal.state, name, getattr(parent.state, name))
    portal.state.model_registry = _default_registry(parent.state.settings)
    _install_error_pages(portal)
    for module in (pages_auth, pages_provider, pages_buyer, pages_operator):
        portal.include_router(module.router)
    portal.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    portal.add_middleware(PortalHeaders, static_prefix=f"{PORTAL_PREFIX}/static/")
    return portal


def mount_portal(app: FastAPI) -> FastAPI:
    """Mount the portal at ``/portal`` of ``app`` (``/`` redirects there); returns the portal app, whose
    ``state.model_registry`` (a callable giving the registry) tests may replace."""
    portal = create_portal(app)
    app.mount(PORTAL_PREFIX, portal)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{PORTAL_PREFIX}/", 303)

    app.state.portal = portal
    return portal
