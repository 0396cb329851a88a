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
    """Root of every error the marketplace raises on purpose. ``exit_code``: the CLI's exit status for it,
    given by each subclass as a class keyword (``class NotFoundError(MarketplaceError, exit_code=3)``)."""

    exit_code: int = 1

    def __init_subclass__(cls, exit_code: int | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code


class ConfigError(MarketplaceError, exit_code=2):
    """A setting or an argument is invalid (wrong value, unknown choice, missing path)."""


class ValidationError(MarketplaceError, exit_code=2):
    """A value handed to the core breaks a documented precondition (NaN score, negative budget...)."""


class NotFoundError(MarketplaceError, exit_code=3):
    """A named object (provider, campaign, label set, model version...) does not exist."""


class ConflictError(MarketplaceError, exit_code=4):
    """The request contradicts what is already stored (same idempotency key, different body...)."""


class RejectedFileError(MarketplaceError, exit_code=5):
    """A provider file was rejected whole; nothing of it was written.

    ``reason_code`` is a stable machine-readable code (see ``marketplace.ingest.reasons``);
    ``location`` says where in the file the problem is (``line 17``, ``row 3``, ``member a/b.jsonl``)
    when that is known.
    """

    def __init__(self, reason_code: str, message: str, *, location: str | None = None) -> None:
        self.reason_code = reason_code
        self.location = location
        where = f" at {location}" if location else ""
        super().__init__(f"[{reason_code}]{where}: {message}")


class ManifestMismatchError(MarketplaceError, exit_code=6):
    """An artifact on disk was produced with other inputs than the reader expects."""


class LedgerInvariantError(MarketplaceError, exit_code=7):
    """The books break an invariant (unbalanced transaction, replay mismatch...)."""


class AuditFailedError(MarketplaceError, exit_code=8):
    """The approximator disagrees with exact LinFiK on the audit sample: payouts are stopped."""
