"""Tables that fit a terminal without cutting what a user copies: the columns that may give way do, in order."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Column, Table

LEAST_SUMMARY = 30  # a summary narrower than this says little: the other columns wrap first, then it is dropped


def fit_table(table: Table, width: int, *, give_way: tuple[str, ...] = (), wrap: bool = False) -> Table:
    """Make the filled ``table`` fit ``width`` columns without cutting a word of a value (names, paths and numbers
    are typed again): columns wrap only between words, widest first, and a table that still does not fit runs past
    the edge rather than cut.

    ``give_way`` names the columns that yield, in order. The first is the summary: cut with an ellipsis to the width
    the others leave (at their full width, else wrapped), or dropped when that is under LEAST_SUMMARY; with ``wrap``
    (a summary the user needs whole, such as why adopt refuses a class) it wraps instead and stays. The others are
    dropped, one by one, while the table does not fit at its narrowest.
    """
    summary_header, *droppable = give_way or (None,)
    summary = next((column for column in table.columns if column.header == summary_header), None)
    others = [column for column in table.columns if column is not summary]
    for column in others:
        column.min_width = _longest_word(column)
    if summary is not None:
        _fit_summary(table, summary, others, width, wrap=wrap)
    for header in droppable:
        if _padding(table, table.columns) + sum(column.min_width for column in table.columns) > width:
            table.columns[:] = [column for column in table.columns if column.header != header]
    for index, column in enumerate(table.columns):
        column._index = index  # rich pads the first and last column by their index
    kept = [column for column in table.columns if column is not summary]
    taken = min(_natural(summary), summary.max_width) if summary in table.columns else 0
    _wrap_widest(kept, width - _padding(table, table.columns) - taken)
    return table


def _fit_summary(table: Table, summary: Column, others: list[Column], width: int, *, wrap: bool) -> None:
    padding = _padding(table, [*others, summary])
    room = width - padding - sum(_natural(column) for column in others)
    if room < LEAST_SUMMARY:
        room = width - padding - sum(column.min_width for column in others)
    summary.min_width = min(_natural(summary), LEAST_SUMMARY)
    if wrap:
        summary.max_width = max(room, LEAST_SUMMARY)
    elif room >= LEAST_SUMMARY:
        summary.no_wrap, summary.overflow, summary.max_width = True, "ellipsis", room
    else:
        table.columns.remove(summary)


def _wrap_widest(columns: list[Column], available: int) -> None:
    """Narrow the widest columns, never below their longest word, until they fit ``available`` (rich wraps them)."""
    widths = [_natural(column) for column in columns]
    excess = sum(widths) - available
    while excess > 0:
        shrinkable = [i for i, column in enumerate(columns) if widths[i] > column.min_width]
        if not shrinkable:
            break
        widths[max(shrinkable, key=widths.__getitem__)] -= 1
        excess -= 1
    for column, column_width in zip(columns, widths):
        column.max_width = column_width


def _padding(table: Table, columns: list[Column]) -> int:
    return 2 * (len(columns) - (0 if table.pad_edge else 1))


def _texts(column: Column) -> list[str]:
    from rich.text import Text

    return [Text.from_markup(cell).plain for cell in [column.header, *column.cells] if isinstance(cell, str)]


def _natural(column: Column) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for text in _texts(column) for line in text.splitlines()), default=1)


def _longest_word(column: Column) -> int:
    from rich.cells import cell_len

    return max((cell_len(word) for text in _texts(column) for word in text.split()), default=1)


def markdown_lines(header: list[str], body: list[list[str]], notes: list[str] = ()) -> list[str]:
    """A Markdown table: the first column as it is, the others right-aligned (numbers); ``notes`` as a list below."""
    lines = [header, ["---"] + ["---:"] * (len(header) - 1), *body]
    table = ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines]
    return table + ([""] + [f"- {note}" for note in notes] if notes else [])


def aligned_lines(header: list[str], body: list[list[str]]) -> list[str]:
    """Plain text columns: the first (a name) left-aligned, the others (numbers) right-aligned."""
    lines = [header, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
            for line in lines]
