"""Tables that fit a terminal without cutting what a user copies: only a summary column is shortened or dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

LEAST_SUMMARY = 12  # a summary narrower than this says nothing: the column is dropped instead


def fit_table(table: Table, width: int, *, summary: str | None = None, wrap: bool = False) -> Table:
    """Make the filled ``table`` fit ``width`` columns: every column keeps its widest value whole (names, paths and
    commands are typed again, so never cut; a table that still does not fit runs past the edge), and the column
    headed ``summary`` gets what is left: cut with an ellipsis, or dropped when that is under LEAST_SUMMARY; with
    ``wrap`` (a summary the user needs whole, such as why adopt refuses a class) wrapped onto more lines instead."""
    from rich.text import Text

    def natural(column) -> int:
        cells = [column.header, *column.cells]
        return max(Text.from_markup(c).cell_len if isinstance(c, str) else 1 for c in cells)

    padding = 2 * (len(table.columns) - 1) if not table.pad_edge else 2 * len(table.columns)
    fixed = [c for c in table.columns if c.header != summary]
    for column in fixed:
        column.no_wrap, column.min_width = True, natural(column)
    room = width - sum(c.min_width for c in fixed) - padding
    for column in [c for c in table.columns if c.header == summary]:
        if wrap:
            column.max_width = max(room, LEAST_SUMMARY)
        elif room < LEAST_SUMMARY:
            table.columns.remove(column)
            for index, kept in enumerate(table.columns):
                kept._index = index  # rich pads the first and last column by their index
        else:
            column.no_wrap, column.overflow, column.max_width = True, "ellipsis", room
    return table
