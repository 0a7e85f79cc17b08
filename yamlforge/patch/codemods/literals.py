"""Appending names to a tuple, set or list literal in the literal's own layout (one per line, or wrapped at
the target's line length), so a registration reads as if the target's authors had written it."""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

LINE_LENGTH = 120  # the line limit of Ultralytics and YOLOv9 sources: a joined literal wraps rather than exceed it


def append_names(literal: cst.Tuple | cst.Set | cst.List, names: Sequence[str], indent: str = ""):
    """``literal`` with ``names`` appended in its own layout.

    One-per-line literals (trailing comma) get a new line before the closing brace; others get ``, X`` on their
    last line, or a new continuation line like their own when that line would grow past :data:`LINE_LENGTH`
    (``indent`` is the indentation of the block holding the literal, which its continuation lines start with).
    """
    elements = list(literal.elements)
    for name in names:
        if not elements:
            elements.append(cst.Element(cst.Name(name)))
            continue
        last = elements[-1]
        if isinstance(last.comma, cst.Comma):  # trailing comma: the new element takes it, and the layout with it
            separator = elements[-2].comma if len(elements) > 1 else cst.Comma(whitespace_after=_opening(literal))
            elements[-1:] = [last.with_changes(comma=separator), cst.Element(cst.Name(name), comma=last.comma)]
        else:
            separator = _wrap(literal.with_changes(elements=elements), name, indent) or cst.Comma(
                whitespace_after=cst.SimpleWhitespace(" ")
            )
            elements[-1:] = [last.with_changes(comma=separator), cst.Element(cst.Name(name))]
    return literal.with_changes(elements=elements)


def _opening(literal: cst.Tuple | cst.Set | cst.List) -> cst.BaseParenthesizableWhitespace:
    """The whitespace after the literal's opening bracket (where its first element starts)."""
    if isinstance(literal, cst.Set):
        return literal.lbrace.whitespace_after
    if isinstance(literal, cst.List):
        return literal.lbracket.whitespace_after
    return literal.lpar[0].whitespace_after if literal.lpar else cst.SimpleWhitespace(" ")


def _wrap(literal: cst.Tuple | cst.Set | cst.List, name: str, indent: str) -> cst.Comma | None:
    """A line-breaking comma like the literal's last one, if ``, name`` would not fit on its last line."""
    breaks = [
        e.comma
        for e in literal.elements
        if isinstance(e.comma, cst.Comma) and isinstance(e.comma.whitespace_after, cst.ParenthesizedWhitespace)
    ]
    if not breaks:
        return None
    last_line = indent + cst.Module([]).code_for_node(literal).rsplit("\n", 1)[-1]
    if len(last_line) + len(", ") + len(name) + len(":") <= LINE_LENGTH:
        return None
    # the break's indentation without any comment that followed that comma
    whitespace = breaks[-1].whitespace_after.with_changes(first_line=cst.TrailingWhitespace(), empty_lines=[])
    return breaks[-1].with_changes(whitespace_after=whitespace)
