"""Declarative base, naming convention and column types shared by every table.

Why a naming convention: Alembic needs stable constraint names to drop or alter them, and
PostgreSQL/SQLite would otherwise invent different ones.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Enum, ForeignKey, Integer, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "IdType",
    "JsonType",
    "UTCDateTime",
    "created_at_column",
    "foreign_id",
    "primary_id",
    "string_enum",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY is the rowid alias).
IdType = BigInteger().with_variant(Integer(), "sqlite")
JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    """Timezone-aware now in UTC. Passed as a *callable* default, never called at import."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use marketplace.db.base.utcnow()")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def primary_id() -> Any:
    """The ``id`` primary key every table has (BIGINT on PostgreSQL, the rowid on SQLite)."""
    return mapped_column(IdType, primary_key=True)


def foreign_id(target: str, *, ondelete: str | None = "RESTRICT", index: bool = False, nullable: bool = False,
               **fk_options: Any) -> Any:
    """An id column referring to ``target`` (``"table.id"``). ``RESTRICT`` by default: rows that lineage,
    allocations or the ledger point at are never deleted from under them."""
    return mapped_column(ForeignKey(target, ondelete=ondelete, **fk_options), nullable=nullable, index=index)


def created_at_column() -> Any:
    """When the row was written (UTC), set by the application, never by the database clock."""
    return mapped_column(UTCDateTime(), default=utcnow)


def string_enum(cls: type[enum.Enum], name: str, length: int = 20) -> Enum:
    """An enum stored as its values in a VARCHAR (no native PostgreSQL enum type: adding a member needs
    no ``ALTER TYPE``, and both engines store the same strings)."""
    return Enum(cls, name=name, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])
