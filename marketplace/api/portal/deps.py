"""Who is signed in to the portal, what their role may open, and the CSRF check of every form.

- no valid session cookie: a GET is sent to the sign-in page (:class:`NotSignedIn`, turned into a 303 by
  the portal's handlers), anything else gets 401;
- a role's forbidden page: 403 (:class:`~marketplace.api.errors.PermissionDeniedError`, the API's rule);
  another tenant's object is the API's one 404 (:mod:`marketplace.api.tenancy`);
- a POST whose ``csrf`` form field is missing or not the session's token: 403, before any work.
A client address over the failed-authentication limit gets 429 here too (the API's limiter).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request

from marketplace.api.auth import FailedAuthLimiter, SessionDep
from marketplace.api.errors import PermissionDeniedError
from marketplace.api.portal.security import SESSION_COOKIE
from marketplace.api.portal.sessions import SignedIn, csrf_matches, signed_in
from marketplace.errors import MarketplaceError

__all__ = ["CsrfError", "NotSignedIn", "client_address", "csrf_checked", "optional_user", "require_portal_roles",
           "signed_user"]


class NotSignedIn(MarketplaceError, exit_code=9):
    """No valid portal session (303 to the sign-in page for a GET, else 401)."""


class CsrfError(PermissionDeniedError):
    """A form without the session's CSRF token (403)."""


def client_address(request: Request) -> str:
    """The address the failed-authentication limit counts (the API's choice: the connection's peer)."""
    return request.client.host if request.client else "unknown"


def optional_user(request: Request, session: SessionDep) -> SignedIn | None:
    """The signed-in principal of the request's session cookie, or None."""
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    limiter.check(client_address(request))
    user = signed_in(session, request.cookies.get(SESSION_COOKIE))
    session.commit()  # ends the read: the page starts with a clean session, and an upload's writer is not held up
    return user


def signed_user(user: Annotated[SignedIn | None, Depends(optional_user)]) -> SignedIn:
    """The signed-in principal; NotSignedIn without a valid session."""
    if user is None:
        raise NotSignedIn("sign in with your API token to open this page")
    return user


def require_portal_roles(*roles: str) -> Callable[..., SignedIn]:
    """A dependency that lets only ``roles`` through (403 for the other signed-in roles)."""

    def dependency(user: SignedIn = Depends(signed_user)) -> SignedIn:  # noqa: B008 - a closure: no Annotated
        if user.caller.role not in roles:
            raise PermissionDeniedError(f"this page is for {' and '.join(roles)} principals; you are signed in as a "
                                        f"{user.caller.role}")
        return user

    return dependency


def csrf_checked(*roles: str) -> Callable[..., Coroutine[Any, Any, SignedIn]]:
    """A dependency for POST forms: the signed-in principal of ``roles`` (any role when none is given), after
    the form's ``csrf`` field was checked against the session's token."""
    role_check = require_portal_roles(*roles) if roles else signed_user
    # (string annotations cannot name a closure's variable, so these dependencies use defaults, not Annotated)

    async def dependency(request: Request, user: SignedIn = Depends(role_check)) -> SignedIn:  # noqa: B008
        form = await request.form()
        if not csrf_matches(request.cookies.get(SESSION_COOKIE, ""), form.get("csrf")):
            raise CsrfError("the form's security token is missing or out of date; reload the page and send it again")
        return user

    return dependency
