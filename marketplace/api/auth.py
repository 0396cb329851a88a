"""Who is calling: the bearer token checked against :func:`marketplace.principals.authenticate`, the role
checks of each endpoint, and the limit on failed authentications.

- no ``Authorization: Bearer TOKEN`` header, or a malformed, unknown or revoked token: 401;
- a principal whose role may not use the endpoint: 403 (another tenant's *object* is a 404, decided where
  the object is looked up, :mod:`marketplace.api.tenancy`);
- more than ``ApiLimits.auth_failures`` wrong or revoked tokens from one client address within
  ``ApiLimits.auth_window_s``: 429 with ``Retry-After`` for every authenticated request from that address
  until the window has passed. The count lives in this process's memory (:class:`FailedAuthLimiter`):
  a restart forgets it, and several server processes each count their own (docs/api.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from marketplace.api.errors import AuthenticationError, PermissionDeniedError, TooManyRequestsError
from marketplace.principals import authenticate, principal_actor

__all__ = ["Caller", "FailedAuthLimiter", "SessionDep", "current_caller", "db_session", "require_roles"]


@dataclass(frozen=True)
class Caller:
    """The authenticated principal of a request (plain values: no session attached)."""

    principal_id: int
    role: str
    name: str

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return principal_actor(self.role, self.name, self.principal_id)


class FailedAuthLimiter:
    """Failed authentications per client address in a sliding window, in memory, thread-safe.

    ``clock``: seconds from any fixed origin (``time.monotonic``; tests pass their own)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.get(address)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
        return times

    def check(self, address: str) -> None:
        """TooManyRequestsError when ``address`` has reached the limit within the window."""
        with self._lock:
            now = self._clock()
            times = self._recent(address, now)
            if len(times) >= self.limit:
                wait = max(1, math.ceil(self.window_s - (now - times[0])))
                raise TooManyRequestsError(f"too many failed authentications from this address; retry in {wait} s "
                                           "with a valid token", retry_after=wait)

    def fail(self, address: str) -> None:
        with self._lock:
            now = self._clock()
            self._recent(address, now)
            self._failures.setdefault(address, deque()).append(now)


def db_session(request: Request) -> Iterator[Session]:
    """One session per request, from the app's session factory; closed (rolled back if open) at the end."""
    factory = request.app.state.session_factory
    with factory() as session:
        yield session


_bearer = HTTPBearer(auto_error=False, description="An API token from `marketplace principals create`.")
_UNAUTHORIZED = "pass a valid API token as 'Authorization: Bearer TOKEN' (`marketplace principals create` issues one)"


SessionDep = Annotated[Session, Depends(db_session)]


def current_caller(request: Request, session: SessionDep,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    """The principal behind the request's bearer token, or 401 (429 after too many failures)."""
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    address = request.client.host if request.client else "unknown"
    limiter.check(address)
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError(f"no API token; {_UNAUTHORIZED}")
    principal = authenticate(session, credentials.credentials)
    if principal is None:
        limiter.fail(address)
        raise AuthenticationError(f"the API token is not valid (unknown, revoked or malformed); {_UNAUTHORIZED}")
    caller = Caller(principal.id, principal.role.value, principal.name)
    session.commit()  # the throttled last_used_at; the route starts with a clean session
    return caller


def require_roles(*roles: str) -> Callable[..., Caller]:
    """A dependency that lets only ``roles`` through (403 for the others)."""

    def dependency(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        if caller.role not in roles:
            raise PermissionDeniedError(f"this endpoint is for {' and '.join(roles)} principals; you are a "
                                        f"{caller.role}")
        return caller

    return dependency
