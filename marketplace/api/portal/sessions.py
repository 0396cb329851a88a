"""Portal sessions: the one home of who a browser is signed in as.

Signing in checks an API token with :func:`marketplace.principals.authenticate_token` and opens a session:
a random id (``secrets.token_urlsafe(32)``, 256 bits) that only the browser's cookie holds; the database
keeps its sha256 (:func:`marketplace.principals.hash_token`, the hashing of API tokens), the principal,
the token it was opened with and the expiry. Every request looks the hash up again and asks
:func:`marketplace.principals.token_is_active` about the token and its principal, so rotating the token or
revoking the principal ends the session at once. Signing out deletes the row.

The CSRF token of a session is derived from its id (HMAC-SHA256 keyed by the id), so it needs no storage,
differs per session and cannot be computed without the cookie. Functions take the caller's
:class:`~sqlalchemy.orm.Session` and never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from marketplace.api.auth import Caller
from marketplace.db import ApiToken, Principal, utcnow
from marketplace.db.portal_sessions import PortalSession
from marketplace.principals import authenticate_token, hash_token, token_is_active

__all__ = ["SESSION_TTL", "OpenedSession", "SignedIn", "close_session", "csrf_matches", "csrf_token", "open_session",
           "signed_in"]

SESSION_TTL = dt.timedelta(hours=8)  # a session ends 8 h after sign-in, whatever happens in between
_CSRF_CONTEXT = b"marketplace portal csrf v1"


@dataclass(frozen=True)
class OpenedSession:
    """A new session: the id for the cookie (shown nowhere else) and when it expires (UTC)."""

    session_id: str
    expires_at: dt.datetime
    caller: Caller


@dataclass(frozen=True)
class SignedIn:
    """The principal behind a request's session cookie and the session's CSRF token."""

    caller: Caller
    csrf: str
    expires_at: dt.datetime


def csrf_token(session_id: str) -> str:
    """The session's CSRF token (hex): HMAC-SHA256 of a fixed context, keyed by the session id."""
    return hmac.new(session_id.encode("utf-8", "surrogatepass"), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_matches(session_id: str, submitted: object) -> bool:
    """Whether ``submitted`` (a form field's value) is the session's CSRF token; constant time."""
    if not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(csrf_token(session_id).encode("ascii"), submitted.encode("utf-8", "surrogatepass"))


def open_session(session: Session, token: str, *, now: dt.datetime | None = None,
                 ttl: dt.timedelta = SESSION_TTL) -> OpenedSession | None:
    """Sign in with an API token: a new session of its principal, or None when the token does not let anyone in
    (the caller counts that as a failed authentication). Deletes every expired session on the way (a flush;
    the caller commits)."""
    moment = now or utcnow()
    found = authenticate_token(session, token, now=moment)
    if found is None:
        return None
    principal, stored = found
    session.execute(delete(PortalSession).where(PortalSession.expires_at <= moment))
    session_id = secrets.token_urlsafe(32)
    row = PortalSession(principal_id=principal.id, token_id=stored.id, session_hash=hash_token(session_id),
                        created_at=moment, expires_at=moment + ttl)
    session.add(row)
    session.flush()
    return OpenedSession(session_id, row.expires_at, Caller(principal.id, principal.role.value, principal.name))


def signed_in(session: Session, session_id: str | None, *, now: dt.datetime | None = None) -> SignedIn | None:
    """The principal a session cookie signs in, or None: no or unknown cookie, an expired session, a token
    rotated away or revoked, a revoked principal."""
    if not session_id or len(session_id) > 100 or not session_id.isascii():
        return None
    digest = hash_token(session_id)
    row = session.execute(
        select(PortalSession, ApiToken, Principal)
        .join(ApiToken, ApiToken.id == PortalSession.token_id)
        .join(Principal, Principal.id == PortalSession.principal_id)
        .where(PortalSession.session_hash == digest)).first()
    if row is None:
        return None
    stored, token, principal = row
    if not hmac.compare_digest(stored.session_hash, digest):
        return None
    if stored.expires_at <= (now or utcnow()) or not token_is_active(token, principal):
        return None
    return SignedIn(Caller(principal.id, principal.role.value, principal.name), csrf_token(session_id),
                    stored.expires_at)


def close_session(session: Session, session_id: str | None) -> bool:
    """Sign out: delete the session (a flush; the caller commits). Whether there was one."""
    if not session_id:
        return False
    result = session.execute(delete(PortalSession).where(PortalSession.session_hash == hash_token(session_id)))
    return bool(result.rowcount)  # type: ignore[attr-defined]
