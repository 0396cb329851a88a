"""Row counts: ``SELECT count(*) FROM table WHERE ...``, the one query behind every status number."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

__all__ = ["count_rows"]


def count_rows(session: Session, entity: Any, *where: ColumnElement[bool]) -> int:
    """How many rows of ``entity`` (a mapped class or table) satisfy every condition in ``where``."""
    stmt = select(func.count()).select_from(entity)
    if where:
        stmt = stmt.where(*where)
    return int(session.execute(stmt).scalar_one())
