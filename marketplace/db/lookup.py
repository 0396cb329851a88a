"""Looking a named row up by what a user types: the one rule for "NAME or ID" arguments.

- an ``int``, or ``id:N`` (also ``ID:N``), is an id and only an id;
- a string of digits is an id too, because names may not be made of digits
  (:func:`marketplace.names.validate_name`). A row stored before that rule may still carry an all-digit
  name: when the digits are the id of one row and the name of *another*, the lookup refuses to guess
  (ConflictError: pass ``id:N`` for the id, or rename the other row); when only the name matches, that
  row is found;
- anything else is a name, compared exactly.

Campaigns and providers (statements, reports, every command taking CAMPAIGN or PROVIDER) use it.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.errors import ConflictError
from marketplace.names import display_name

__all__ = ["find_by_name_or_id", "parse_id_reference"]

T = TypeVar("T")
_EXPLICIT_ID = re.compile(r"id:(\d+)", re.IGNORECASE)


def parse_id_reference(name_or_id: str | int) -> int | None:
    """The id an argument names explicitly (an int or ``id:N``), else None."""
    if isinstance(name_or_id, int):
        return name_or_id
    hit = _EXPLICIT_ID.fullmatch(name_or_id.strip())
    return int(hit.group(1)) if hit else None


def find_by_name_or_id(session: Session, entity: type[T], name_or_id: str | int) -> T | None:
    """The ``entity`` row (a mapped class with ``id`` and ``name`` columns) ``name_or_id`` names, or None.

    Raises ConflictError when a digit string is both one row's id and another row's (legacy) name."""
    table: Any = entity
    explicit = parse_id_reference(name_or_id)
    if explicit is not None:
        return session.scalar(select(entity).where(table.id == explicit))
    assert isinstance(name_or_id, str)
    by_name = session.scalar(select(entity).where(table.name == name_or_id))
    if not name_or_id.isdigit() or not name_or_id.isascii():
        return by_name
    by_id = session.scalar(select(entity).where(table.id == int(name_or_id)))
    if by_id is not None and by_name is not None and by_id is not by_name:
        what = getattr(table, "__tablename__", "row").rstrip("s")
        raise ConflictError(
            f"{name_or_id!r} is the id of {what} {display_name(getattr(by_id, 'name', ''))} and the name of "
            f"{what} id {getattr(by_name, 'id', '?')}; pass id:{name_or_id} for the id, or id:"
            f"{getattr(by_name, 'id', '?')} for the one named {name_or_id!r}"
        )
    return by_id if by_id is not None else by_name
