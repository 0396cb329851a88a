"""Transaction-scoped locks that serialise the decisions which must see every earlier one.

Who is the first owner of a text is decided by reading what is stored, then writing: two ingests
running at once on PostgreSQL would each read a catalog without the other's rows and both become first
owners of the same (near-)copy, or race on the first-owner unique index. :func:`lock_catalog_owners`
makes such decisions take turns: on PostgreSQL a transaction-scoped advisory lock
(``pg_advisory_xact_lock``), released at COMMIT or ROLLBACK, so the next ingest reads (READ COMMITTED:
every statement sees what committed before it) the rows of the one before; on SQLite nothing is needed,
because every transaction starts with ``BEGIN IMMEDIATE`` (marketplace/db/engine.py) and writers
already take turns. The cost: ingests of new files write one after the other on PostgreSQL (reading and
hashing a file before the lock still run in parallel).

:func:`lock_campaign_names` does the same for campaign creation (a name and its registry name must be
unique among all campaigns).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from marketplace.db.engine import is_postgres

__all__ = ["CAMPAIGN_NAMES_LOCK", "CATALOG_OWNERS_LOCK", "lock_campaign_names", "lock_catalog_owners"]

# Fixed 64-bit keys of the advisory locks (any constant unlikely to collide with another application's).
CATALOG_OWNERS_LOCK = 0x6D6B745F6F776E31  # "mkt_own1"
CAMPAIGN_NAMES_LOCK = 0x6D6B745F63616D31  # "mkt_cam1"


def _advisory_xact_lock(session: Session, key: int) -> None:
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def lock_catalog_owners(session: Session) -> None:
    """Wait until no other transaction decides first owners; held until this transaction ends."""
    _advisory_xact_lock(session, CATALOG_OWNERS_LOCK)


def lock_campaign_names(session: Session) -> None:
    """Wait until no other transaction creates a campaign; held until this transaction ends."""
    _advisory_xact_lock(session, CAMPAIGN_NAMES_LOCK)
