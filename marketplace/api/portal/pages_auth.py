"""Signing in and out of the portal, and the landing page that sends each role to its dashboard.

The sign-in form posts an API token. Before any session exists its CSRF protection is a random value both
in a SameSite=Strict cookie and in the form (another site can neither read the value nor send the cookie);
a failed sign-in counts toward the API's failed-authentication limit (429 past it). A successful one sets
the session cookie (:mod:`marketplace.api.portal.sessions`).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from marketplace.api.auth import FailedAuthLimiter, SessionDep
from marketplace.api.portal.deps import CsrfError, client_address, csrf_checked, optional_user
from marketplace.api.portal.security import SESSION_COOKIE, SIGNIN_COOKIE, SIGNIN_COOKIE_AGE, clear_cookie, set_cookie
from marketplace.api.portal.sessions import SignedIn, close_session, open_session
from marketplace.api.portal.templating import PORTAL_PREFIX, page
from marketplace.db import utcnow

__all__ = ["home_of", "router", "safe_next"]

router = APIRouter()
HOMES = {"provider": "/provider", "buyer": "/buyer", "operator": "/operator"}


def home_of(role: str) -> str:
    """The dashboard of a role."""
    return PORTAL_PREFIX + HOMES.get(role, "/")


def safe_next(target: str | None, role: str) -> str:
    """Where to go after signing in: ``target`` when it is a portal path (never another site), else the role's
    dashboard."""
    if target and target.startswith(f"{PORTAL_PREFIX}/") and not target.startswith("//") and "\\" not in target \
            and target.isascii() and target.isprintable() and not target.startswith(f"{PORTAL_PREFIX}/sign-"):
        return target
    return home_of(role)


@router.get("/", include_in_schema=False)
def landing(user: Annotated[SignedIn | None, Depends(optional_user)]) -> RedirectResponse:
    return RedirectResponse(home_of(user.caller.role) if user else f"{PORTAL_PREFIX}/sign-in", 303)


def _sign_in_page(request: Request, status: int = 200, error: str | None = None,
                  next_path: str | None = None) -> Response:
    value = secrets.token_urlsafe(32)
    response = page(request, "sign_in.html", status, title="Sign in", csrf=value, error=error,
                    next_path=next_path or "")
    set_cookie(response, request, SIGNIN_COOKIE, value, utcnow() + SIGNIN_COOKIE_AGE)
    return response


@router.get("/sign-in")
def sign_in_form(request: Request, user: Annotated[SignedIn | None, Depends(optional_user)],
                 next: str | None = None) -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next, user.caller.role), 303)
    return _sign_in_page(request, next_path=next if next and next.startswith(f"{PORTAL_PREFIX}/") else None)


@router.post("/sign-in")
def sign_in(request: Request, session: SessionDep, token: Annotated[str, Form(max_length=200)] = "",
            csrf: Annotated[str, Form(max_length=200)] = "",
            next: Annotated[str, Form(max_length=2000)] = "") -> Response:
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode("utf-8", "surrogatepass")):
        raise CsrfError("the sign-in form's security token is missing or out of date; reload the sign-in page")
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    address = client_address(request)
    limiter.check(address)
    opened = open_session(session, token.strip())
    if opened is None:
        limiter.fail(address)
        return _sign_in_page(request, 401, "that API token is not valid (unknown, revoked, rotated or mistyped); "
                                           "ask the operator for one (`marketplace principals create`)", next)
    session.commit()
    response = RedirectResponse(safe_next(next, opened.caller.role), 303)
    set_cookie(response, request, SESSION_COOKIE, opened.session_id, opened.expires_at)
    clear_cookie(response, request, SIGNIN_COOKIE)
    return response


@router.post("/sign-out")
def sign_out(request: Request, session: SessionDep, user: Annotated[SignedIn, Depends(csrf_checked())]) -> Response:
    close_session(session, request.cookies.get(SESSION_COOKIE))
    session.commit()
    response = RedirectResponse(f"{PORTAL_PREFIX}/sign-in", 303)
    clear_cookie(response, request, SESSION_COOKIE)
    return response


