"""Every error the API returns is JSON ``{"error": CODE, "detail": ONE LINE}``, never a stack trace.

The core's :class:`~marketplace.errors.MarketplaceError` subclasses map to a status here
(:func:`error_parts`), and the API adds its own for what only HTTP has: a missing or wrong token (401), a
role's forbidden endpoint (403), a body too large (413), too many failed sign-ins (429), a timeout (504).
Unexpected exceptions become 500 with a request reference; the traceback goes to the server log only.
"""

from __future__ import annotations

from typing import Any

from marketplace.errors import (
    AuditFailedError,
    ConfigError,
    ConflictError,
    LedgerInvariantError,
    ManifestMismatchError,
    MarketplaceError,
    NotFoundError,
    RejectedFileError,
    ValidationError,
)
from marketplace.settings import redact_secrets

__all__ = [
    "AuthenticationError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RequestTimeoutError",
    "TooManyRequestsError",
    "error_body",
    "error_parts",
]


class AuthenticationError(MarketplaceError, exit_code=9):
    """No token, a malformed one, or one that is unknown or revoked (401)."""


class PermissionDeniedError(MarketplaceError, exit_code=9):
    """The principal's role may not use this endpoint (403). Never used for another tenant's object: that
    is a 404, so its existence is not confirmed."""


class PayloadTooLargeError(MarketplaceError, exit_code=2):
    """The request body or uploaded file is larger than the limit (413)."""


class TooManyRequestsError(MarketplaceError, exit_code=9):
    """Too many failed authentications from one address (429); ``retry_after`` seconds until it may retry."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimeoutError(MarketplaceError, exit_code=9):
    """The request took longer than the service's timeout (504)."""


# (class, HTTP status, error code); the first match wins, so subclasses come before their parents.
_MAPPING: tuple[tuple[type[MarketplaceError], int, str], ...] = (
    (AuthenticationError, 401, "unauthorized"),
    (PermissionDeniedError, 403, "forbidden"),
    (PayloadTooLargeError, 413, "payload_too_large"),
    (TooManyRequestsError, 429, "too_many_requests"),
    (RequestTimeoutError, 504, "timeout"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (AuditFailedError, 409, "audit_failed"),
    (ManifestMismatchError, 409, "manifest_mismatch"),
    (RejectedFileError, 422, "rejected_file"),
    (ValidationError, 422, "invalid"),
    (ConfigError, 422, "invalid"),
    (LedgerInvariantError, 500, "ledger_invariant"),
)


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The one error shape: a code, one line of detail (no password, no line breaks), and extra fields."""
    line = " ".join(redact_secrets(str(detail)).split())
    return {"error": code, "detail": line, **{k: v for k, v in extra.items() if v is not None}}


def error_parts(exc: MarketplaceError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of a marketplace error."""
    status, code = next(((s, c) for cls, s, c in _MAPPING if isinstance(exc, cls)), (400, "bad_request"))
    extra: dict[str, Any] = {}
    if isinstance(exc, RejectedFileError):
        extra = {"reason_code": exc.reason_code, "location": exc.location}
    return status, error_body(code, str(exc), **extra)
