"""The portal's response headers and cookies, in one place.

Every portal response carries :data:`PORTAL_HEADERS`: a Content-Security-Policy that lets a page load
only the portal's own files (no inline script or style, images from the portal or ``data:`` URIs for the
report plots, no framing, forms post only to the portal), ``nosniff``, no referrer. Pages and downloads
are never cached (``no-store``); the static CSS and script may be cached for an hour.

Cookies are HttpOnly (no script reads them), SameSite=Strict (no other site's page sends them), Path=/
and Secure when the request came over https (directly, or as a proxy in front says with
``X-Forwarded-Proto``, which uvicorn applies for trusted proxies).
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "PORTAL_HEADERS", "SESSION_COOKIE", "SIGNIN_COOKIE", "STATIC_CACHE", "PortalHeaders",
           "clear_cookie", "set_cookie"]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
       "form-action 'self'; base-uri 'none'")
PORTAL_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                  "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
STATIC_CACHE = "public, max-age=3600"
SESSION_COOKIE = "mkt_session"  # the session id (marketplace.api.portal.sessions)
SIGNIN_COOKIE = "mkt_signin"  # the sign-in form's CSRF value, before any session exists
SIGNIN_COOKIE_AGE = dt.timedelta(hours=1)


class PortalHeaders:
    """Sets :data:`PORTAL_HEADERS` on every response of the portal (replacing what a response set itself,
    except a static file's cache policy)."""

    def __init__(self, app: ASGIApp, static_prefix: str) -> None:
        self.app = app
        self.static_prefix = static_prefix
        self._names = {k.lower().encode("latin-1") for k in PORTAL_HEADERS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(PORTAL_HEADERS)
        if str(scope.get("path", "")).startswith(self.static_prefix):
            headers["Cache-Control"] = STATIC_CACHE
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self._names]
                message = {**message, "headers": [*kept, *raw]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, expires_at: dt.datetime) -> None:
    """An HttpOnly, SameSite=Strict cookie on Path=/ that expires at ``expires_at`` (UTC); Secure over https."""
    max_age = max(0, int((expires_at - dt.datetime.now(dt.UTC)).total_seconds()))
    response.set_cookie(name, value, max_age=max_age, expires=expires_at, path="/", secure=_secure(request),
                        httponly=True, samesite="strict")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    """Tell the browser to forget cookie ``name`` (same attributes as when it was set)."""
    response.delete_cookie(name, path="/", secure=_secure(request), httponly=True, samesite="strict")
