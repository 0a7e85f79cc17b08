"""The text of a model YAML: where each layer's row sits, and how a graph's edits are spliced back byte for byte."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple

from ruamel.yaml.nodes import Node, SequenceNode

from ..errors import YamlforgeError
from .graph import SECTIONS, ModelGraph, Placement, RowChange, SourceRow, slot_label
from .load import entry, load_nodes


@dataclass
class Span:
    """Where a flow row, or one of its elements, sits in the text; ``children`` for a ``[...]`` sequence."""

    start: int
    end: int
    children: list[Span] | None = None


def _suffix_is_plain(suffix: str) -> bool:
    return re.fullmatch(r"\s*,?\s*(#.*)?\s*", suffix) is not None


@dataclass
class Row:
    """A base layer's one-line flow row in the text: its spans, the line(s) around it, and its trailing comment."""

    flow_section: bool  # the section is one ``[ ... ]`` list (YOLOv9 style)
    span: Span
    line: int  # 1-based, for error messages
    line_start: int  # offset of the first line of the row
    line_end: int  # offset just past the newline of its last line
    prefix: str  # text on the first line before the row (``  - `` or ``   `` or ``  [``)
    suffix: str  # text on the last line after the row (``,  # 3-P3/8``)

    @property
    def own_lines(self) -> bool:
        """The row can be cut or copied line by line: nothing but itself, a comma and a comment on its lines."""
        return self.prefix.strip() in ("", "-") and _suffix_is_plain(self.suffix)

    @property
    def comment_offset(self) -> int | None:
        """Offset of the ``#`` of the row's trailing comment."""
        hash_at = self.suffix.find("#")
        return None if hash_at < 0 else self.span.end + hash_at

    @property
    def comment_gap(self) -> str:
        hash_at = self.suffix.find("#")
        return " " if hash_at < 0 else self.suffix[: hash_at].lstrip(",") or " "


class Place(IntEnum):
    """Order of splices that start and end at the same offset, where one row's line ends and the next one's starts:
    rows inserted after the earlier row come before rows inserted before the later one."""

    REWRITE = 0
    AFTER_ROW = 1
    BEFORE_ROW = 2


class Splice(NamedTuple):
    """Text that replaces ``[start, end)`` of the base; ``place`` and ``sequence`` order splices at one offset."""

    start: int
    end: int
    text: str
    place: Place = Place.REWRITE
    sequence: int = 0


class Rendered(NamedTuple):
    """The output text, every layer of it at its slot, and the changed-rows table."""

    text: str
    placements: list[Placement]
    changes: list[RowChange]


class ModelLayout:
    """Parses a model YAML once: its data, the rows of its layers (``rows``), and the text splices of other edits."""

    def __init__(self, text: str, where: str = "<yaml>"):
        self.text = text
        self.where = where
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.data, self.node = load_nodes(text, where=where, what="model YAML")
        if not isinstance(self.data, dict) or not all(isinstance(self.data.get(s), list) for s in SECTIONS):
            raise YamlforgeError("not a model YAML: it needs 'backbone' and 'head' lists", where=f"{where}:1")
        self.rows: list[Row | None] = []  # per base layer: its one-line flow row, None when not written as one
        self.source_rows: list[SourceRow] = []
        self._splices: list[Splice] = []  # text edits outside the layer rows: splice_node, cut_lines
        for section in SECTIONS:
            seq = entry(self.node, section)[1]
            cursor = self._offset(seq.start_mark.line, seq.start_mark.column)  # where the next row may start
            for value, item in zip(self.data[section], seq.value):
                row = self._read_row(item, bool(seq.flow_style), cursor)
                self.rows.append(row)
                args_text = self._args_text(row, value)
                self.source_rows.append(SourceRow(section, item.start_mark.line + 1, value, args_text))
                cursor = row.span.end if row else cursor

    def graph(self, outputs: Callable[[str, list], int] | None = None) -> ModelGraph:
        """The layer graph of this file; ``outputs(module, args)`` gives the index slots a row takes."""
        return ModelGraph(self.source_rows, self.where, outputs)

    # ------------------------------------------------------------ reading

    def _offset(self, line: int, col: int) -> int:
        return self._line_starts[line] + col

    def _line_of(self, offset: int) -> int:
        lo, hi = 0, len(self._line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _line_end(self, line: int) -> int:
        return self._line_starts[line + 1] if line + 1 < len(self._line_starts) else len(self.text)

    def _span(self, node: Node, after: int) -> Span | None:
        """Offsets of a node and, for a sequence, of its items; None unless it starts at or after ``after`` and each
        item lies inside it, in order (an alias's node is its anchor's, which sits earlier in the text)."""
        start, end = node.start_mark, node.end_mark
        span = Span(self._offset(start.line, start.column), self._offset(end.line, end.column))
        if span.start < after:
            return None
        if isinstance(node, SequenceNode):
            span.children, cursor = [], span.start
            for item in node.value:
                child = self._span(item, cursor)
                if child is None or child.end > span.end:
                    return None
                span.children.append(child)
                cursor = child.end
        return span

    def _read_row(self, node: Node, flow_section: bool, after: int) -> Row | None:
        """The row of a one-line-style ``[from, repeats, module, args]`` node, which edits can rewrite in place."""
        span = self._span(node, after) if isinstance(node, SequenceNode) and node.flow_style else None
        if span is None:
            return None
        first, last = self._line_of(span.start), self._line_of(span.end - 1)
        line_start, line_end = self._line_starts[first], self._line_end(last)
        return Row(flow_section, span, node.start_mark.line + 1, line_start, line_end,
                   self.text[line_start:span.start], self.text[span.end:line_end].rstrip("\n"))

    def _args_text(self, row: Row | None, value: Any) -> str | None:
        """The args exactly as written, when the row is a four-item flow list."""
        if row is None or not isinstance(value, list) or len(row.span.children) != 4:
            return None
        args = row.span.children[3]
        return self.text[args.start:args.end]

    # ------------------------------------------------------------ splices outside the rows

    def splice_node(self, node: Node, text: str) -> None:
        """On render, ``node``'s own text (a scalar outside the layer rows, such as ``nc:``'s number) becomes
        ``text``."""
        start, end = node.start_mark, node.end_mark
        self._splices.append(Splice(self._offset(start.line, start.column), self._offset(end.line, end.column), text))

    def cut_lines(self, first: Node, last: Node) -> None:
        """On render, the whole lines from ``first``'s start to ``last``'s end go (one ``scales:`` row, say)."""
        end = last.end_mark
        last_line = end.line if end.column > 0 or end.line == first.start_mark.line else end.line - 1
        self._splices.append(Splice(self._line_starts[first.start_mark.line], self._line_end(last_line), ""))

    # ------------------------------------------------------------ rendering

    def render(self, graph: ModelGraph) -> Rendered:
        """The edited text (untouched bytes copied, changed spans of changed rows rewritten, new rows added), with
        the placements and changed-rows table it was written from."""
        placements = graph.placements()
        splices = [s for s in self._splices if self.text[s.start:s.end] != s.text]
        placed = {p.layer.key: p for p in placements}
        for index, row in enumerate(self.rows):  # the old backbone's rows (graph.swapped) are neither
            if index in graph.removed:
                splices += self._cut_row(graph.base_slot[index], row)
            elif index in placed:
                splices += self._rewrite_row(placed[index])
        if graph.swapped:
            splices += self._write_swapped_backbone(graph, placements[0])
        inserted = [p for p in placements if p.layer.anchor is not None]
        for sequence, placement in enumerate(inserted):
            splices += self._insert_row(graph, placement, sequence)
        return Rendered(self._apply(splices), placements, graph.changes(placements))

    def _rewrite_row(self, placement: Placement) -> list[Splice]:
        """The changed ``from`` numbers, module, repeats and args of a base row, and its renumbered comment."""
        layer, row = placement.layer, self.rows[placement.layer.key]
        moved = placement.from_values != placement.base_from
        if (moved or layer.changed) and row is None:
            raise YamlforgeError(f"layer {placement.base_slot} is not written as a one-line [from, repeats, module, "
                                 "args] flow list, so it cannot be rewritten", where=f"{self.where}")
        spans: list[tuple[Span, str]] = []
        if moved:
            froms = row.span.children[0].children if layer.many else [row.span.children[0]]
            spans += [(span, str(new)) for span, old, new in zip(froms, placement.base_from, placement.from_values)
                      if old != new]
        if layer.changed:
            spans += zip(row.span.children[1:], (str(layer.repeats), layer.module, layer.args_text))
        splices = [Splice(span.start, span.end, text) for span, text in spans
                   if self.text[span.start:span.end] != text]
        if placement.slot != placement.base_slot and row is not None:
            splices += self._renumber_comment(row, placement.base_slot, placement.slot, layer.outputs)
        return splices

    def _renumber_comment(self, row: Row, index: int, position: int, outputs: int) -> list[Splice]:
        """``# 15 (P3/8-small)``, ``# X3 (21)`` and a multi-output ``# 2-4`` follow the layer's new slot numbers;
        other numbers are prose."""
        at = row.comment_offset
        if at is None:
            return []
        comment = self.text[at:row.line_end]
        splices = []
        lead = re.match(r"#\s*(\d+)(?!\d)(?:-(\d+)(?!\d))?", comment)
        if lead and int(lead.group(1)) == index:
            splices.append(Splice(at + lead.start(1), at + lead.end(1), str(position)))
            if lead.group(2) and outputs > 1 and int(lead.group(2)) == index + outputs - 1:
                splices.append(Splice(at + lead.start(2), at + lead.end(2), str(position + outputs - 1)))
        paren = re.search(r"\((\d+)\)", comment)
        if paren and int(paren.group(1)) == index:
            splices.append(Splice(at + paren.start(1), at + paren.end(1), str(position)))
        return splices

    def _cut_row(self, slot: int, row: Row | None) -> list[Splice]:
        """A removed row goes with its line, or (first row of a flow section) up to its line's end."""
        if row is None or not _suffix_is_plain(row.suffix):
            raise YamlforgeError(f"layer {slot} shares its line with the end of the list; put it on its own line to "
                                 "remove it", where=f"{self.where}:{row.line if row else 1}")
        if row.prefix.strip() in ("", "-"):
            return [Splice(row.line_start, row.line_end, "")]
        # `  [[-1, 1, Silence, []],  # 0`: keep the list's opening bracket
        return [Splice(row.span.start, row.line_end - (1 if self.text[row.line_end - 1:row.line_end] == "\n" else 0),
                       "")]

    def _write_swapped_backbone(self, graph: ModelGraph, new: Placement) -> list[Splice]:
        """The old backbone rows, and the comments and blank lines between them, become the one new row."""
        old = sorted(graph.swapped)
        missing = next((k for k in old if self.rows[k] is None), None)
        if missing is not None:
            raise YamlforgeError(f"backbone layer {graph.base_slot[missing]} is not written as a one-line [from, "
                                 "repeats, module, args] flow list, so the backbone cannot be replaced",
                                 where=self.where)
        first, last = self.rows[old[0]], self.rows[old[-1]]
        text, end = _row_text(new), last.span.end
        if _suffix_is_plain(last.suffix):  # its own comma and comment go too; otherwise the list's `]` stays
            end = last.span.end + len(last.suffix)
            comment = slot_label(new.slot, new.layer.outputs) + (new.layer.comment or "")
            text += f"{',' if first.flow_section else ''}{first.comment_gap}# {comment}"
        return [Splice(first.span.start, end, text)]

    def _insert_row(self, graph: ModelGraph, placement: Placement, sequence: int) -> list[Splice]:
        """A new row on its own line after or before its anchor row, in the anchor's style, its slot as comment."""
        layer = placement.layer
        anchor_index, side = layer.anchor
        anchor = self._anchor_row(graph.base_slot[anchor_index], self.rows[anchor_index], side)
        if anchor.flow_section:
            prefix, comma = " " * len(anchor.prefix), ","
        else:
            prefix, comma = anchor.prefix if anchor.prefix.strip() == "-" else \
                " " * (len(anchor.prefix) - 2) + "- ", ""
        comment = slot_label(placement.slot, layer.outputs) + (layer.comment or "")
        text = f"{prefix}{_row_text(placement)}{comma}{anchor.comment_gap}# {comment}\n"
        if side == "after":
            at = anchor.line_end
            if not self.text[:at].endswith("\n"):  # the anchor is on the last line, without a newline
                text = "\n" + text.rstrip("\n")
            return [Splice(at, at, text, Place.AFTER_ROW, sequence)]
        at = anchor.line_start
        if anchor.prefix.strip() in ("", "-"):
            return [Splice(at, at, text, Place.BEFORE_ROW, sequence)]
        # `  [[-1, ...` : the bracket moves to the new row
        return [Splice(at, at + len(anchor.prefix), " " * len(anchor.prefix)),
                Splice(at, at, anchor.prefix + text[len(prefix):], Place.BEFORE_ROW, sequence)]

    def _anchor_row(self, slot: int, anchor: Row | None, side: str) -> Row:
        """The row a new row is placed next to, which must leave its lines to itself."""
        if anchor is None:
            raise YamlforgeError(f"layer {slot} is not written as a one-line [from, repeats, module, args] flow "
                                 f"list, so no row can be placed {side} it", where=self.where)
        if not anchor.own_lines and not (side == "before" and anchor.flow_section
                                         and _suffix_is_plain(anchor.suffix)):
            raise YamlforgeError(f"cannot place a new row {side} layer {slot}: its line holds more than the row (a "
                                 "bracket of the list); put the row on its own line",
                                 where=f"{self.where}:{anchor.line}")
        return anchor

    def _apply(self, splices: list[Splice]) -> str:
        out, cursor = [], 0
        for splice in sorted(splices, key=lambda s: (s.start, s.end, s.place, s.sequence)):
            if splice.start < cursor:
                raise AssertionError("overlapping edits")  # a bug, not bad input
            out += [self.text[cursor:splice.start], splice.text]
            cursor = splice.end
        out.append(self.text[cursor:])
        return "".join(out)


def _row_text(placement: Placement) -> str:
    """The text of a new row, in the style Ultralytics and YOLOv9 files use."""
    layer = placement.layer
    values = placement.from_values
    written = f"[{', '.join(map(str, values))}]" if layer.many else str(values[0])
    return f"[{written}, {layer.repeats}, {layer.module}, {layer.args_text}]"
