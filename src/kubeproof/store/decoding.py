"""Decoding stored JSON, times and dates, and what happens when a stored value cannot be
decoded.

The store keeps JSON and times as text (SQLite: text nobody checks). Someone editing the
database behind kubeproof's back can leave a value no decoder accepts: not JSON, a blob,
JSON nested deeper than the parser recurses, not a time. Every column of those types
decodes through the types below, which turn any such failure into one exception,
`UnreadableValue`, naming the column: `evidence verify` reports it as an altered entry,
and the commands that read the store refuse with a pointer to `evidence verify`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson
from sqlalchemy import JSON, Date, DateTime, MetaData, Table, select, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType, TypeDecorator


class UnreadableValue(Exception):
    """A stored value that cannot be decoded: the store was damaged or tampered with.
    The message names the column and why, never the value (it may hold a secret)."""

    def __init__(self, table: str, column: str, reason: str) -> None:
        super().__init__(f"{table}.{column} {reason}")
        self.table, self.column, self.reason = table, column, reason


class _Decoded(TypeDecorator[Any]):
    """A stored type whose decoding failures raise UnreadableValue."""

    reason = "cannot be decoded"
    # Set by name_columns(): the column this type instance decodes, for the message.
    table, column = "?", "?"

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        process = super().result_processor(dialect, coltype)
        if process is None:
            return None  # the driver decodes the value itself (PostgreSQL)
        table, column, reason = self.table, self.column, self.reason

        def decode(value: Any) -> Any:
            try:
                return process(value)
            # Whatever the decoder raises for a value it cannot read: malformed text
            # (ValueError, which JSON and Unicode errors are), a blob where text belongs
            # (TypeError), or JSON nested too deeply to parse (RecursionError).
            except (ValueError, TypeError, RecursionError):
                raise UnreadableValue(table, column, reason) from None

        return decode


class StoredJSON(_Decoded):
    impl = JSON
    cache_ok = True
    reason = "is not valid JSON"
    # As JSON's own: None is stored as JSON null, and values are not hashable.
    should_evaluate_none = True
    hashable = False


class StoredTime(_Decoded):
    impl = DateTime
    cache_ok = True
    reason = "is not a valid time"


class StoredDate(_Decoded):
    impl = Date
    cache_ok = True
    reason = "is not a valid date"


def name_columns(metadata: MetaData) -> None:
    """Tell each decoded column's type which column it is, for UnreadableValue."""
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, _Decoded):
                column.type.table, column.type.column = table.name, column.name


def json_values(texts: Iterable[str | bytes | None], table: str, column: str) -> list[Any]:
    """Stored JSON texts decoded with orjson (the fast path of `evidence verify`)."""
    try:
        return [None if text is None else orjson.loads(text) for text in texts]
    except orjson.JSONDecodeError:  # also invalid UTF-8, and nesting past orjson's limit
        raise UnreadableValue(table, column, StoredJSON.reason) from None


def damaged_row(session: Session, error: UnreadableValue, metadata: MetaData) -> str | None:
    """Which row holds the value `error` is about ("findings row 7"), found by decoding
    the column again row by row; None if no row fails now."""
    table: Table = metadata.tables[error.table]
    column = table.c[error.column]
    dialect = session.get_bind().dialect
    decode = column.type.dialect_impl(dialect).result_processor(dialect, None)
    if decode is None:
        return None
    keys = list(table.primary_key.columns)
    # NullType: the values as the driver returns them, undecoded.
    rows = session.execute(select(*keys, type_coerce(column, NullType())).order_by(*keys))
    for *key, value in rows:
        try:
            decode(value)
        except UnreadableValue:
            return f"{error.table} row {', '.join(str(part) for part in key)}"
    return None
