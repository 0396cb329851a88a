"""Prefect artifact keys: the one rule every task that publishes an artifact follows."""

from __future__ import annotations

__all__ = ["artifact_key"]

MAX_KEY_CHARS = 100


def artifact_key(*parts: object) -> str:
    """``parts`` joined by dashes, lower-cased, every other character a dash (Prefect keys allow only
    lowercase letters, digits and dashes), at most 100 characters."""
    raw = "-".join(str(p) for p in parts).lower()
    return "".join(c if c.isalnum() else "-" for c in raw).strip("-")[:MAX_KEY_CHARS]
