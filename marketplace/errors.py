"""One exception tree for the whole core.

Every message says what went wrong *and* how to fix it. Callers chain with ``raise ... from exc``.
The CLI turns any :class:`MarketplaceError` into a one-line message and a non-zero exit code; other
exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

__all__ = [
    "AuditFailedError",
    "ConfigError",
    "ConflictError",
    "LedgerInvariantError",
    "ManifestMismatchError",
    "MarketplaceError",
    "NotFoundError",
    "RejectedFileError",
    "ValidationError",
]


class MarketplaceError(Exception):
    """Root of every error the marketplace raises on purpose."""

    exit_code: int = 1


class ConfigError(MarketplaceError):
    """A setting or an argument is invalid (wrong value, unknown choice, missing path)."""

    exit_code = 2


class ValidationError(MarketplaceError):
    """A value handed to the core breaks a documented precondition (NaN score, negative budget...)."""

    exit_code = 2


class NotFoundError(MarketplaceError):
    """A named object (provider, campaign, label set, model version...) does not exist."""

    exit_code = 3


class ConflictError(MarketplaceError):
    """The request contradicts what is already stored (same idempotency key, different body...)."""

    exit_code = 4


class RejectedFileError(MarketplaceError):
    """A provider file was rejected whole; nothing of it was written.

    ``reason_code`` is a stable machine-readable code (see ``marketplace.ingest.reasons``);
    ``location`` says where in the file the problem is (``line 17``, ``row 3``, ``member a/b.jsonl``)
    when that is known.
    """

    exit_code = 5

    def __init__(self, reason_code: str, message: str, *, location: str | None = None) -> None:
        self.reason_code = reason_code
        self.location = location
        where = f" at {location}" if location else ""
        super().__init__(f"[{reason_code}]{where}: {message}")


class ManifestMismatchError(MarketplaceError):
    """An artifact on disk was produced with other inputs than the reader expects."""

    exit_code = 6


class LedgerInvariantError(MarketplaceError):
    """The books break an invariant (unbalanced transaction, replay mismatch...)."""

    exit_code = 7


class AuditFailedError(MarketplaceError):
    """The approximator disagrees with exact LinFiK on the audit sample: payouts are stopped."""

    exit_code = 8
