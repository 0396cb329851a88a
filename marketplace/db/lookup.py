"""Looking a named row up by what a user types: the one rule for "NAME or ID" arguments.

An int, or a string of digits, is tried as an id first; a digit string that is no id is then tried as
a name (a campaign may be called "2026"). Anything else is a name. Campaigns and providers use it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

__all__ = ["find_by_name_or_id"]

T = TypeVar("T")


def find_by_name_or_id(session: Session, entity: type[T], name_or_id: str | int) -> T | None:
    """The ``entity`` row (a mapped class with ``id`` and ``name`` columns) ``name_or_id`` names, or None."""
    table: Any = entity
    if isinstance(name_or_id, int) or name_or_id.isdigit():
        found = session.scalar(select(entity).where(table.id == int(name_or_id)))
        if found is not None or isinstance(name_or_id, int):
            return found
    return session.scalar(select(entity).where(table.name == name_or_id))
