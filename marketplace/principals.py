"""Principals and their API tokens: the one home of who may call the HTTP API and as whom.

A principal is a provider, a buyer or the operator. A provider principal's name is its provider name (what
``marketplace ingest --provider`` takes), a buyer principal's name is the buyer name its campaigns carry
(``marketplace campaign create --buyer NAME``); both pass :func:`marketplace.names.validate_name`.

Tokens are ``mkt_`` followed by 43 characters of ``secrets.token_urlsafe(32)`` (256 random bits). The
prefix lets secret scanners and people recognise one; only the sha256 of the whole token is stored, so the
database never holds a usable secret. :func:`authenticate` hashes what it is given, finds the row by the
hash and compares the hashes again with :func:`hmac.compare_digest` (constant time). A token is shown
once, when :func:`create_principal` or :func:`rotate_token` issues it.

Every change (created, revoked, rotated) is recorded in the audit trail in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from marketplace.db.audit import record_audit
from marketplace.db.base import utcnow
from marketplace.db.principals import ApiToken, Principal, PrincipalRole
from marketplace.errors import ConflictError, NotFoundError, ValidationError
from marketplace.names import display_name, validate_name

__all__ = [
    "ROLES",
    "TOKEN_PREFIX",
    "IssuedToken",
    "PrincipalInfo",
    "authenticate",
    "authenticate_token",
    "create_principal",
    "find_principal",
    "hash_token",
    "list_principals",
    "principal_actor",
    "revoke_principal",
    "rotate_token",
    "token_is_active",
]

ROLES = tuple(r.value for r in PrincipalRole)
TOKEN_PREFIX = "mkt_"
_TOKEN_CHARS = len(TOKEN_PREFIX) + 43  # token_urlsafe(32): 43 characters
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)  # last_used_at is written at most once a minute per token


@dataclass(frozen=True)
class PrincipalInfo:
    """A principal as listings and the API show it (never a token or its hash)."""

    id: int
    role: str
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    active_tokens: int
    last_used_at: dt.datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class IssuedToken:
    """A principal and its new token: the only time the secret exists outside the caller's hands."""

    principal: PrincipalInfo
    token: str


def hash_token(token: str) -> str:
    """The stored form of a token: sha256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def principal_actor(role: str, name: str, principal_id: int) -> str:
    """How a principal is named in the audit trail (``provider acme (principal 3)``)."""
    return f"{role} {name} (principal {principal_id})"


def token_is_active(token: ApiToken, principal: Principal) -> bool:
    """Whether a stored token still lets its principal in: neither the token (rotated away, revoked) nor the
    principal (revoked) is revoked. Checked by :func:`authenticate` and by the web portal's sessions."""
    return token.revoked_at is None and principal.revoked_at is None


def _role(role: str) -> PrincipalRole:
    try:
        return PrincipalRole(str(role).strip().lower())
    except ValueError:
        raise ValidationError(f"role {display_name(role)} is not one of {', '.join(ROLES)}; pass --role "
                              f"{'|'.join(ROLES)}") from None


def _new_token(session: Session, principal_id: int) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(principal_id=principal_id, token_hash=hash_token(token)))
    return token


def _info(session: Session, p: Principal) -> PrincipalInfo:
    n_active, last_used = session.execute(
        select(func.count(ApiToken.id).filter(ApiToken.revoked_at.is_(None)), func.max(ApiToken.last_used_at))
        .where(ApiToken.principal_id == p.id)).one()
    return PrincipalInfo(p.id, p.role.value, p.name, p.created_at, p.revoked_at, int(n_active or 0), last_used)


def create_principal(session: Session, role: str, name: str, *, actor: str | None = None) -> IssuedToken:
    """A new principal of ``role`` named ``name`` and its first token (caller commits).

    ValidationError for an unknown role or a name :func:`marketplace.names.validate_name` refuses;
    ConflictError when the role already has a principal of that name (revoked ones included: the audit trail
    names them, so a name is never reused)."""
    kind = _role(role)
    clean = validate_name(name, "buyer" if kind is PrincipalRole.BUYER else "provider"
                          if kind is PrincipalRole.PROVIDER else "operator")
    existing = session.scalar(select(Principal).where(Principal.role == kind, Principal.name == clean))
    if existing is not None:
        state = "revoked" if existing.revoked_at is not None else "active"
        raise ConflictError(f"a {kind.value} principal named {display_name(clean)} already exists ({state}); "
                            f"`marketplace principals rotate {clean}` gives an active one a new token")
    principal = Principal(role=kind, name=clean)
    session.add(principal)
    session.flush()
    token = _new_token(session, principal.id)
    session.flush()
    record_audit(session, "principal_created", actor=actor, principal_id=principal.id, role=kind.value, name=clean)
    return IssuedToken(_info(session, principal), token)


def find_principal(session: Session, name: str, role: str | None = None) -> Principal:
    """The principal named ``name`` (of ``role`` when given). NotFoundError when there is none, ConflictError
    when several roles have that name and no role was given."""
    stmt = select(Principal).where(Principal.name == name.strip(" "))
    if role is not None:
        stmt = stmt.where(Principal.role == _role(role))
    found = list(session.scalars(stmt.order_by(Principal.id)))
    if not found:
        raise NotFoundError(f"no principal named {display_name(name)}"
                            f"{' with role ' + role if role else ''}; `marketplace principals list` lists them")
    if len(found) > 1:
        roles = ", ".join(p.role.value for p in found)
        raise ConflictError(f"principals of several roles are named {display_name(name)} ({roles}); pass --role")
    return found[0]


def list_principals(session: Session) -> list[PrincipalInfo]:
    """Every principal, oldest first, with its number of active tokens and when one was last used."""
    return [_info(session, p) for p in session.scalars(select(Principal).order_by(Principal.id))]


def revoke_principal(session: Session, name: str, role: str | None = None, *,
                     actor: str | None = None) -> PrincipalInfo:
    """Revoke the principal and every token it has (caller commits); revoking twice changes nothing."""
    principal = find_principal(session, name, role)
    now = utcnow()
    if principal.revoked_at is None:
        principal.revoked_at = now
        session.execute(update(ApiToken).where(ApiToken.principal_id == principal.id, ApiToken.revoked_at.is_(None))
                        .values(revoked_at=now))
        session.flush()
        record_audit(session, "principal_revoked", actor=actor, principal_id=principal.id,
                     role=principal.role.value, name=principal.name)
    return _info(session, principal)


def rotate_token(session: Session, name: str, role: str | None = None, *, actor: str | None = None) -> IssuedToken:
    """Revoke every token of an active principal and issue a new one (caller commits).

    ConflictError for a revoked principal: it gets no token again."""
    principal = find_principal(session, name, role)
    if principal.revoked_at is not None:
        raise ConflictError(f"principal {display_name(principal.name)} was revoked on "
                            f"{principal.revoked_at:%Y-%m-%d %H:%M} UTC and gets no new token; create another one")
    now = utcnow()
    revoked = session.execute(update(ApiToken).where(ApiToken.principal_id == principal.id,
                                                     ApiToken.revoked_at.is_(None)).values(revoked_at=now))
    token = _new_token(session, principal.id)
    session.flush()
    record_audit(session, "token_rotated", actor=actor, principal_id=principal.id, role=principal.role.value,
                 name=principal.name, revoked_tokens=int(revoked.rowcount or 0))  # type: ignore[attr-defined]
    return IssuedToken(_info(session, principal), token)


def authenticate_token(session: Session, token: str, *,
                       now: dt.datetime | None = None) -> tuple[Principal, ApiToken] | None:
    """The active principal ``token`` belongs to and the token's row, or None (malformed, unknown, revoked
    token or principal). See :func:`authenticate`."""
    if not token.startswith(TOKEN_PREFIX) or len(token) != _TOKEN_CHARS or not token.isascii():
        return None
    digest = hash_token(token)
    row = session.execute(select(ApiToken, Principal).join(Principal, Principal.id == ApiToken.principal_id)
                          .where(ApiToken.token_hash == digest)).first()
    if row is None:
        return None
    stored, principal = row
    if not hmac.compare_digest(stored.token_hash, digest):
        return None
    if not token_is_active(stored, principal):
        return None
    moment = now or utcnow()
    if stored.last_used_at is None or moment - stored.last_used_at >= LAST_USED_RESOLUTION:
        stored.last_used_at = moment
        session.flush()
    return principal, stored


def authenticate(session: Session, token: str, *, now: dt.datetime | None = None) -> Principal | None:
    """The active principal ``token`` belongs to, or None (malformed, unknown, revoked token or principal).

    Touches the token's ``last_used_at`` at most once per :data:`LAST_USED_RESOLUTION` (a flush, the caller
    commits), so a busy client does not turn every read into a write."""
    found = authenticate_token(session, token, now=now)
    return found[0] if found is not None else None
