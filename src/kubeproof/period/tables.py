"""The period report's HTML tables, built one way everywhere."""

from __future__ import annotations

from typing import NamedTuple


class Column(NamedTuple):
    header: str  # plain text
    width: int | None = None  # percent of the table's width; None: the browser chooses
    number: bool = False  # right-aligned


def number(header: str, width: int | None = None) -> Column:
    return Column(header, width, number=True)


def table(rows: str, *columns: Column) -> str:
    """A table of `rows` (ready `<tr>` markup) under the columns' headers."""
    widths = "".join(f'<col style="width:{c.width}%">' for c in columns if c.width is not None)
    headers = "".join(
        f"<th class='num'>{c.header}</th>" if c.number else f"<th>{c.header}</th>" for c in columns
    )
    group = f"<colgroup>{widths}</colgroup>" if widths else ""
    return f"<table>{group}<thead><tr>{headers}</tr></thead><tbody>{rows}</tbody></table>"
