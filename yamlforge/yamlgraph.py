"""A model YAML as a graph of layers whose edits are written back by re-emitting only the rows they touch."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ruamel.yaml.nodes import Node, SequenceNode

from .errors import YamlforgeError
from .yamlload import entry, load_nodes

SECTIONS = ("backbone", "head")
INPUT = "input"  # producer of layer 0's ``-1``: the image


# ---------------------------------------------------------------- the graph


@dataclass
class Span:
    """Where a flow row, or one of its elements, sits in the text; ``children`` for a ``[...]`` sequence."""

    start: int
    end: int
    children: list[Span] | None = None


@dataclass
class Ref:
    """One entry of a ``from``: the layer it reads (base index, new-layer key or INPUT), which of its outputs, and
    how it is written. ``output`` is 0 except for a multi-output (backbone) layer, whose outputs take consecutive
    index slots: the entry names slot ``first slot of producer + output``."""

    producer: Hashable
    relative: bool
    output: int = 0


@dataclass
class Row:
    """A base layer's row in the text: its spans, the line(s) around it, and its trailing comment."""

    section: str
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


def _suffix_is_plain(suffix: str) -> bool:
    return re.fullmatch(r"\s*,?\s*(#.*)?\s*", suffix) is not None


@dataclass
class Layer:
    """A layer of the compiled model: base layers keep their ``row``; inserted ones have ``row=None``."""

    key: Hashable  # base index, or ("new", k)
    refs: list[Ref]
    many: bool  # ``from`` written as a list
    repeats: Any
    module: str
    args: list[Any]
    args_text: str
    row: Row | None = None
    changed: bool = False  # module / repeats / args rewritten by a replace
    anchor: tuple[Hashable, str] | None = None  # (base index, "after" | "before"): where an inserted row is written
    rewired: set[int] = field(default_factory=set)  # ref positions an edit pointed at another producer
    edited_by: str | None = None  # the option that created or replaced it, for messages
    outputs: int = 1  # index slots it takes: K for a backbone module returning K feature maps
    comment: str | None = None  # trailing comment of an inserted row (default: its slot number)


Slot = tuple[Hashable, int]  # (layer key, output): what one index slot holds


class ModelGraph:
    """Parses a model YAML once, applies edits by base layer numbers, and renders text with minimal changes.

    Layer numbers are index slots, numbered the way the patched target numbers them: a backbone-role layer with K
    outputs (``outputs(module)`` says K) takes K consecutive slots, later layers shift by K - 1, and a ``from``
    naming slot p + k reads the layer's output k.
    """

    def __init__(self, text: str, where: str = "<yaml>", outputs: Callable[[str], int] | None = None):
        self.text = text
        self.where = where
        self._outputs = outputs or (lambda module: 1)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.data, self.node = load_nodes(text, where=where, what="model YAML")
        if not isinstance(self.data, dict) or not all(isinstance(self.data.get(s), list) for s in SECTIONS):
            raise YamlforgeError("not a model YAML: it needs 'backbone' and 'head' lists", where=f"{where}:1")
        self.base: list[Layer] = []
        self._splices: list[tuple[int, int, str]] = []  # text edits outside the layer rows: splice_node, cut_lines
        slot = 0
        for section in SECTIONS:
            seq = entry(self.node, section)[1]
            cursor = self._offset(seq.start_mark.line, seq.start_mark.column)  # where the next row may start
            for value, item in zip(self.data[section], seq.value):
                layer = self._read_layer(len(self.base), slot, value, item, section, bool(seq.flow_style), cursor)
                self.base.append(layer)
                slot += layer.outputs
                cursor = layer.row.span.end if layer.row else cursor
        self.base_slot: dict[Hashable, int] = self.slot_numbers(self.base)
        self.slot_owner: dict[int, Slot] = {self.base_slot[b.key] + k: (b.key, k) for b in self.base
                                        for k in range(b.outputs)}
        self._resolve_base_refs()
        self.layers: list[Layer] = [self._copy(layer) for layer in self.base]
        self.removed: set[int] = set()
        self.swapped: set[int] = set()  # base layers of the backbone section a swap_backbone replaced
        self._tails: dict[Slot, Slot] = {}  # (base layer, output) -> the last layer inserted after it
        self._new = 0
        self._validate_refs(self.base, base=True)

    # ------------------------------------------------------------ reading

    def _offset(self, line: int, col: int) -> int:
        return self._line_starts[line] + col

    def splice_node(self, node: Node, text: str) -> None:
        """On render, ``node``'s own text (a scalar outside the layer rows, such as ``nc:``'s number) becomes ``text``."""
        start, end = node.start_mark, node.end_mark
        self._splices.append((self._offset(start.line, start.column), self._offset(end.line, end.column), text))

    def cut_lines(self, first: Node, last: Node) -> None:
        """On render, the whole lines from ``first``'s start to ``last``'s end go (one ``scales:`` row, say)."""
        end = last.end_mark
        last_line = end.line if end.column > 0 or end.line == first.start_mark.line else end.line - 1
        self._splices.append((self._line_starts[first.start_mark.line], self._line_end(last_line), ""))

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

    def _read_layer(self, index: int, slot: int, value: Any, node: Node, section: str, flow: bool,
                    after: int) -> Layer:
        """Row ``index`` starting at ``slot``; its refs hold absolute slot numbers until _resolve_base_refs."""
        line = node.start_mark.line
        where = f"{self.where}:{line + 1}"
        if not isinstance(value, list) or len(value) != 4:
            raise YamlforgeError(f"layer {slot} is not a [from, repeats, module, args] row", where=where)
        f, n, module, args = value
        entries = list(f) if isinstance(f, list) else [f]
        if not entries or not all(isinstance(e, int) and not isinstance(e, bool) for e in entries):
            raise YamlforgeError(f"layer {slot}: 'from' must be a layer index or a list of them, got {f!r}",
                                 where=where)
        if not isinstance(module, str) or not isinstance(args, list):
            raise YamlforgeError(f"layer {slot}: module must be a name and args a list", where=where)
        refs = []
        for e in entries:
            if e < 0:
                producer = slot + e
                if producer < 0:
                    if slot == 0 and e == -1:
                        producer = INPUT
                    else:
                        raise YamlforgeError(f"layer {slot}: from {e} points before the first layer", where=where)
                refs.append(Ref(producer, relative=True))
            else:
                refs.append(Ref(e, relative=False))
        row = None
        span = self._span(node, after) if isinstance(node, SequenceNode) and node.flow_style else None
        if span is not None:  # a one-line-style [from, repeats, module, args] row, which edits can rewrite in place
            first, last = self._line_of(span.start), self._line_of(span.end - 1)
            line_start, line_end = self._line_starts[first], self._line_end(last)
            row = Row(section, flow, span, line + 1, line_start, line_end, self.text[line_start:span.start],
                      self.text[span.end:line_end].rstrip("\n"))
        args_text = self.text[row.span.children[3].start:row.span.children[3].end] if row else repr(list(args))
        return Layer(index, refs, isinstance(f, list), n, module, list(args), args_text, row,
                     outputs=max(1, self._outputs(module)))

    def _resolve_base_refs(self) -> None:
        """Absolute slot numbers -> (layer, output); a slot past the last layer does not exist."""
        for layer in self.base:
            for ref in layer.refs:
                if ref.producer == INPUT:
                    continue
                if ref.producer not in self.slot_owner:
                    raise YamlforgeError(f"layer {self.base_slot[layer.key]}: from {ref.producer} points to a layer "
                                         "that does not exist", where=self.where_of(layer))
                ref.producer, ref.output = self.slot_owner[ref.producer]

    @staticmethod
    def _copy(layer: Layer) -> Layer:
        return Layer(layer.key, [Ref(r.producer, r.relative, r.output) for r in layer.refs], layer.many,
                     layer.repeats, layer.module, layer.args, layer.args_text, layer.row, outputs=layer.outputs)

    @staticmethod
    def slot_numbers(layers: list[Layer]) -> dict[Hashable, int]:
        """Each layer's first index slot: the running sum of the slots the layers before it take."""
        numbers, slot = {}, 0
        for layer in layers:
            numbers[layer.key] = slot
            slot += layer.outputs
        return numbers

    def _validate_refs(self, layers: list[Layer], *, base: bool) -> None:
        """Every ``from`` reads an existing output of an earlier layer; only the first layer reads the image."""
        positions = {layer.key: i for i, layer in enumerate(layers)}
        for i, layer in enumerate(layers):
            for ref in layer.refs:
                if ref.producer == INPUT:
                    if i != 0:
                        raise YamlforgeError(f"{self.describe(layer)} would read the image input; only layer 0 can",
                                             where=self.where_of(layer))
                    continue
                target = positions.get(ref.producer)
                if target is None or target >= i or ref.output >= layers[target].outputs:
                    shown = self.base_slot[ref.producer] + ref.output if isinstance(ref.producer, int) \
                        else "a new layer"
                    why = "a later layer" if target is not None and target >= i else "a layer that does not exist"
                    raise YamlforgeError(f"{self.describe(layer)}: from {shown} points to {why}",
                                         where=self.where_of(layer))

    # ------------------------------------------------------------ queries

    def describe(self, layer: Layer) -> str:
        if isinstance(layer.key, int):
            return f"layer {self.base_slot[layer.key]}"
        return f"new layer {layer.module} ({layer.edited_by})"

    def where_of(self, layer: Layer) -> str:
        if layer.row is not None:
            return f"{self.where}:{layer.row.line}"
        return layer.edited_by or "layer"

    def base_slot_of(self, index: int, option: str) -> Slot:
        """(base layer, output) at base slot ``index``; errors name ``option``."""
        if index not in self.slot_owner:
            raise YamlforgeError(f"layer {index} does not exist: the base has layers 0..{len(self.slot_owner) - 1}",
                                 where=option)
        key, output = self.slot_owner[index]
        if key in self.swapped:
            raise YamlforgeError(f"layer {index} is in the backbone that --backbone replaces", where=option,
                                 hint="edit head layers only (numbers of the base file), or edit the generated YAML")
        if key in self.removed:
            raise YamlforgeError(f"layer {index} is removed by another edit", where=option)
        return key, output

    def layer(self, index: int, option: str) -> Layer:
        """The current layer that holds base slot ``index`` (any slot of a multi-output layer); errors name ``option``."""
        key, _ = self.base_slot_of(index, option)
        return next(layer for layer in self.layers if layer.key == key)

    def position(self, key: Hashable) -> int:
        return next(i for i, layer in enumerate(self.layers) if layer.key == key)

    def consumers(self, key: Hashable, output: int | None = None) -> list[tuple[Layer, int]]:
        """(layer, ref position) of every ``from`` entry reading ``key`` (only its ``output`` when given)."""
        return [(layer, j) for layer in self.layers for j, ref in enumerate(layer.refs)
                if ref.producer == key and (output is None or ref.output == output)]

    # ------------------------------------------------------------ edits (numbers are base slot numbers)

    def _new_layer(self, module: str, args: list[Any], args_text: str, repeats: Any, option: str) -> Layer:
        self._new += 1
        return Layer(("new", self._new), [], False, repeats, module, args, args_text, edited_by=option)

    def replace(self, index: int, module: str, args: list[Any], args_text: str, repeats: Any, option: str) -> Layer:
        """Swap layer ``index``'s module, args and repeats; its inputs and consumers stay."""
        layer = self.layer(index, option)
        if layer.changed:
            raise YamlforgeError(f"layer {index} is replaced twice", where=option)
        outputs = max(1, self._outputs(module))
        if outputs != layer.outputs:
            raise YamlforgeError(f"layer {index} ({layer.module}) has {layer.outputs} output(s) and {module} "
                                 f"{outputs}: the layers reading it could not keep their inputs", where=option,
                                 hint="gen-yaml --backbone MODULE swaps a whole backbone section")
        layer.module, layer.args, layer.args_text, layer.repeats = module, args, args_text, repeats
        layer.changed, layer.edited_by = True, option
        return layer

    def insert_after(self, index: int, module: str, args: list[Any], args_text: str, repeats: Any,
                     option: str) -> Layer:
        """A new layer reading output ``index`` (or what was last inserted after it); its readers now read the new one.

        For a multi-output layer, ``index`` names one of its slots, so the new layer processes that output only.
        """
        slot = self.base_slot_of(index, option)
        tail = self._tails.get(slot, slot)
        new = self._new_layer(module, args, args_text, repeats, option)
        producer = next((x for x in self.layers if x.key == tail[0]), None)
        last = producer is None or tail[1] == producer.outputs - 1  # `-1` reads a backbone's last output only
        new.refs = [Ref(tail[0], relative=last, output=tail[1])]
        new.anchor = (slot[0], "after")
        for consumer, j in self.consumers(*tail):
            consumer.refs[j] = Ref(new.key, consumer.refs[j].relative)
            consumer.rewired.add(j)
        self.layers.insert(self.position(tail[0]) + 1, new)
        self._tails[slot] = (new.key, 0)
        return new

    def insert_before(self, index: int, module: str, args: list[Any], args_text: str, repeats: Any,
                      option: str) -> Layer:
        """A new layer between ``index`` and its single input; other readers of that input are unchanged."""
        layer = self.layer(index, option)
        if len(layer.refs) != 1:
            raise YamlforgeError(f"layer {index} ({layer.module}) reads {len(layer.refs)} layers; insert-before needs "
                                 "a layer with one input", where=option,
                                 hint="insert after one of its inputs instead (--insert-after N=...)")
        new = self._new_layer(module, args, args_text, repeats, option)
        source = layer.refs[0]
        new.refs = [Ref(source.producer, source.relative, source.output)]
        new.anchor = (layer.key, "before")
        layer.refs[0] = Ref(new.key, relative=True)
        layer.rewired.add(0)
        self.layers.insert(self.position(layer.key), new)
        return new

    def remove(self, index: int, option: str) -> Layer:
        """Drop layer ``index``; its consumers read its single input instead."""
        layer = self.layer(index, option)
        key = layer.key
        if layer.outputs != 1:
            raise YamlforgeError(f"layer {index} ({layer.module}) has {layer.outputs} outputs, so its readers cannot "
                                 "all be rewired to its single input; it cannot be removed", where=option,
                                 hint="gen-yaml --backbone MODULE swaps a whole backbone section")
        if len(layer.refs) != 1:
            raise YamlforgeError(f"layer {index} ({layer.module}) reads {len(layer.refs)} layers, so its readers "
                                 "cannot be rewired to a single input; it cannot be removed", where=option)
        if layer.changed or any(a == (key, "after") or a == (key, "before")
                                for a in (x.anchor for x in self.layers)):
            raise YamlforgeError(f"layer {index} is used by another edit and cannot also be removed", where=option)
        section = self.base[key].row.section if self.base[key].row else None
        left = [b for b in self.base if b.row and b.row.section == section and b.key not in self.removed]
        new_rows = [x for x in self.layers if x.anchor and self.base[x.anchor[0]].row.section == section]
        if section and len(left) == 1 and not new_rows:
            raise YamlforgeError(f"layer {index} is the only row of '{section}'; a section cannot be empty",
                                 where=option)
        source = layer.refs[0]
        self.layers.remove(layer)
        self.removed.add(key)
        for consumer, j in self.consumers(key):
            consumer.refs[j] = Ref(source.producer, consumer.refs[j].relative, source.output)
            consumer.rewired.add(j)
        return layer

    def swap_backbone(self, module: str, args: list[Any], args_text: str, strides: tuple[Fraction, ...],
                      old_strides: dict[Slot, Fraction | None], option: str) -> Layer:
        """Replace every row of ``backbone:`` by one layer with ``len(strides)`` outputs reading the image.

        Each head entry that read the old backbone now reads the new output whose stride (``strides``, relative to
        the image) equals the stride of what it read (``old_strides``); no such output is an error naming the head
        layer. Call it before other edits: their numbers then name head layers of the base file.
        """
        if self.swapped or self._new or self.removed or any(x.changed for x in self.layers):
            raise YamlforgeError("--backbone is applied first, once; other edits come after it", where=option)
        old = {b.key for b in self.base[:len(self.data["backbone"])]}
        if not old:
            raise YamlforgeError("the base has no backbone rows to replace", where=option)
        new = self._new_layer(module, args, args_text, 1, option)
        new.refs, new.outputs = [Ref(INPUT, relative=True)], len(strides)
        labels = ", ".join(stride_label(s) for s in strides)
        new.comment = f": {labels}"
        for layer in self.layers:
            if layer.key in old:
                continue
            for j, ref in enumerate(layer.refs):
                if ref.producer not in old:
                    continue
                stride = old_strides.get((ref.producer, ref.output))
                read = f"backbone layer {self.base_slot[ref.producer] + ref.output} ({self.base[ref.producer].module})"
                if stride is None:
                    raise YamlforgeError(f"{self.describe(layer)} reads {read}, whose stride cannot be worked out, so "
                                         f"the {module} output it should read is unknown", where=self.where_of(layer))
                matches = [k for k, s in enumerate(strides) if s == stride]
                if not matches:
                    raise YamlforgeError(f"{self.describe(layer)} reads {read} at {stride_label(stride)}, but {module} "
                                         f"has no output at that stride (its outputs: {labels})",
                                         where=self.where_of(layer),
                                         hint="pick a backbone with that output, or a base whose head reads only these")
                layer.refs[j] = Ref(new.key, ref.relative, matches[-1])
                layer.rewired.add(j)
        self.layers = [new] + [x for x in self.layers if x.key not in old]
        self.swapped = old
        return new

    def validate(self) -> None:
        self._validate_refs(self.layers, base=False)

    # ------------------------------------------------------------ strides

    def output_strides(self, layers: list[Layer], factor: Callable[[Layer], Any]) -> dict[Slot, Fraction | None]:
        """Stride of every (layer, output), input = 1: its input's stride times its own factor; None when unknown.

        ``factor(layer)`` is a Fraction (or None) for a one-output layer and a tuple of them, one per output
        relative to its input, for a multi-output one.
        """
        out: dict[Slot, Fraction | None] = {(INPUT, 0): Fraction(1)}
        for layer in layers:
            source = layer.refs[-1] if layer.module == "CBFuse" else layer.refs[0]
            before, own = out.get((source.producer, source.output)), factor(layer)
            if not isinstance(own, tuple) or len(own) != layer.outputs:
                own = (own,) if layer.outputs == 1 and not isinstance(own, tuple) else (None,) * layer.outputs
            for k, each in enumerate(own):
                out[layer.key, k] = None if before is None or each is None else before * each
        return out

    def strides(self, layers: list[Layer], factor: Callable[[Layer], Any]) -> dict[Hashable, Fraction | None]:
        """Output stride of every layer (its last output for a multi-output one; input = 1); None when unknown."""
        table = self.output_strides(layers, factor)
        return {INPUT: Fraction(1)} | {layer.key: table[layer.key, layer.outputs - 1] for layer in layers}

    # ------------------------------------------------------------ rendering

    def from_value(self, layer: Layer, position: int, positions: dict[Hashable, int]) -> list[int]:
        """The ``from`` numbers of ``layer`` at slot ``position``, ``positions`` giving every layer's first slot."""
        values = []
        for ref in layer.refs:
            target = -1 if ref.producer == INPUT else positions[ref.producer] + ref.output
            values.append(target - position if ref.relative or ref.producer == INPUT else target)
        return values

    def _from_text(self, values: list[int], many: bool) -> str:
        return f"[{', '.join(map(str, values))}]" if many else str(values[0])

    def row_text(self, layer: Layer, position: int, positions: dict[Hashable, int]) -> str:
        """The text of an inserted row, in the style Ultralytics and YOLOv9 files use."""
        values = self.from_value(layer, position, positions)
        return f"[{self._from_text(values, layer.many)}, {layer.repeats}, {layer.module}, {layer.args_text}]"

    @staticmethod
    def slot_label(position: int, outputs: int) -> str:
        """``7``, or ``0-3`` for a layer taking four slots."""
        return str(position) if outputs == 1 else f"{position}-{position + outputs - 1}"

    def render(self) -> str:
        """The edited text: untouched bytes copied, changed spans of changed rows rewritten, new rows added."""
        self.validate()
        positions = self.slot_numbers(self.layers)
        base_positions = self.base_slot | {INPUT: -1}
        current = {layer.key: layer for layer in self.layers}
        patches: list[tuple[int, int, int, str]] = []  # (start, end, order, text)

        def patch(start: int, end: int, text: str, order: int = 0) -> None:
            if self.text[start:end] != text or start == end:
                patches.append((start, end, order, text))

        for start, end, text in self._splices:
            patch(start, end, text)

        for base_layer in self.base:
            index = base_layer.key
            if index in self.swapped:
                continue
            if index in self.removed:
                self._cut_row(base_layer, patch)
                continue
            layer = current[index]
            position, old_position = positions[index], self.base_slot[index]
            values = self.from_value(layer, position, positions)
            old_values = self.from_value(base_layer, old_position, base_positions)
            needs_rewrite = values != old_values or layer.changed
            if needs_rewrite and layer.row is None:
                raise YamlforgeError(f"layer {old_position} is not written as a one-line [from, repeats, module, "
                                     "args] flow list, so it cannot be rewritten", where=f"{self.where}")
            if values != old_values:
                spans = layer.row.span.children[0].children if layer.many else [layer.row.span.children[0]]
                for span, old, new in zip(spans, old_values, values):
                    if old != new:
                        patch(span.start, span.end, str(new))
            if layer.changed:
                n_span, m_span, a_span = layer.row.span.children[1:]
                patch(n_span.start, n_span.end, str(layer.repeats))
                patch(m_span.start, m_span.end, layer.module)
                patch(a_span.start, a_span.end, layer.args_text)
            if position != old_position and layer.row is not None:
                self._renumber_comment(layer.row, old_position, position, layer.outputs, patch)

        if self.swapped:
            self._write_swapped_backbone(positions, patch)
        inserted = [x for x in self.layers if x.row is None and x.anchor is not None]
        for order, layer in enumerate(inserted):
            position = positions[layer.key]
            anchor_index, side = layer.anchor
            anchor = self.base[anchor_index].row
            if anchor is None:
                raise YamlforgeError(f"layer {self.base_slot[anchor_index]} is not written as a one-line [from, "
                                     f"repeats, module, args] flow list, so no row can be placed {side} it",
                                     where=self.where)
            if not anchor.own_lines and not (side == "before" and anchor.flow_section
                                             and _suffix_is_plain(anchor.suffix)):
                raise YamlforgeError(f"cannot place a new row {side} layer {self.base_slot[anchor_index]}: its line "
                                     "holds more than the row (a bracket of the list); put the row on its own line",
                                     where=f"{self.where}:{anchor.line}")
            if anchor.flow_section:
                prefix, comma = " " * len(anchor.prefix), ","
            else:
                prefix, comma = anchor.prefix if anchor.prefix.strip() == "-" else \
                    " " * (len(anchor.prefix) - 2) + "- ", ""
            comment = self.slot_label(position, layer.outputs) + (layer.comment or "")
            text = f"{prefix}{self.row_text(layer, position, positions)}{comma}{anchor.comment_gap}# {comment}\n"
            if side == "after":
                at = anchor.line_end
                if not self.text[:at].endswith("\n"):  # the anchor is on the last line, without a newline
                    text = "\n" + text.rstrip("\n")
                patch(at, at, text, order)
            else:
                at = anchor.line_start
                if anchor.prefix.strip() not in ("", "-"):  # `  [[-1, ...` : the bracket moves to the new row
                    text = anchor.prefix + text[len(prefix):]
                    patch(at, at + len(anchor.prefix), " " * len(anchor.prefix))
                patch(at, at, text, 100000 + order)
        return self._apply(patches)

    def _write_swapped_backbone(self, positions: dict[Hashable, int], patch) -> None:
        """The old backbone rows, and the comments and blank lines between them, become the one new row."""
        old = sorted(self.swapped)
        missing = next((k for k in old if self.base[k].row is None), None)
        if missing is not None:
            raise YamlforgeError(f"backbone layer {self.base_slot[missing]} is not written as a one-line [from, "
                                 "repeats, module, args] flow list, so the backbone cannot be replaced",
                                 where=self.where)
        first, last = self.base[old[0]].row, self.base[old[-1]].row
        new = self.layers[0]
        text = self.row_text(new, positions[new.key], positions)
        end = last.span.end
        if _suffix_is_plain(last.suffix):  # its own comma and comment go too; otherwise the list's `]` stays
            end = last.span.end + len(last.suffix)
            comment = self.slot_label(positions[new.key], new.outputs) + (new.comment or "")
            text += f"{',' if first.flow_section else ''}{first.comment_gap}# {comment}"
        patch(first.span.start, end, text)

    def _cut_row(self, layer: Layer, patch) -> None:
        row = layer.row
        if row is None or not _suffix_is_plain(row.suffix):
            raise YamlforgeError(f"layer {self.base_slot[layer.key]} shares its line with the end of the list; put it "
                                 "on its own line to remove it", where=f"{self.where}:{row.line if row else 1}")
        if row.prefix.strip() in ("", "-"):
            patch(row.line_start, row.line_end, "")
        else:  # `  [[-1, 1, Silence, []],  # 0`: keep the list's opening bracket
            patch(row.span.start, row.line_end - (1 if self.text[row.line_end - 1:row.line_end] == "\n" else 0), "")

    def _renumber_comment(self, row: Row, index: int, position: int, outputs: int, patch) -> None:
        """``# 15 (P3/8-small)``, ``# X3 (21)`` and a multi-output ``# 2-4`` follow the layer's new slot numbers;
        other numbers are prose."""
        at = row.comment_offset
        if at is None:
            return
        comment = self.text[at:row.line_end]
        lead = re.match(r"#\s*(\d+)(?!\d)(?:-(\d+)(?!\d))?", comment)
        if lead and int(lead.group(1)) == index:
            patch(at + lead.start(1), at + lead.end(1), str(position))
            if lead.group(2) and outputs > 1 and int(lead.group(2)) == index + outputs - 1:
                patch(at + lead.start(2), at + lead.end(2), str(position + outputs - 1))
        paren = re.search(r"\((\d+)\)", comment)
        if paren and int(paren.group(1)) == index:
            patch(at + paren.start(1), at + paren.end(1), str(position))

    def _apply(self, patches: list[tuple[int, int, int, str]]) -> str:
        out, cursor = [], 0
        for start, end, _, text in sorted(patches, key=lambda p: (p[0], p[1], p[2])):
            if start < cursor:
                raise AssertionError("overlapping edits")  # a bug, not bad input
            out.append(self.text[cursor:start])
            out.append(text)
            cursor = end
        out.append(self.text[cursor:])
        return "".join(out)


# ---------------------------------------------------------------- resolution of built-in layers

PLAIN_STRIDE_ARG = {  # module -> index of the stride in its YAML args (after parse_model's c1)
    "Conv": 2, "DWConv": 2, "GhostConv": 2, "RepConv": 2, "SCDown": 2, "Conv2": 2, "LightConv": None,
    "nn.Conv2d": 3, "SP": 1,
}
FIXED_FACTOR = {"ADown": 2, "AConv": 2, "MP": 2, "ReOrg": 2, "HGStem": 4, "Focus": 2}
UNKNOWN_FACTOR = {"TorchVision", "Index"}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def builtin_factor(module: str, args: list[Any]) -> Fraction | None:
    """How much a target's own layer shrinks the feature map (2: /2, 1/2: upsampling x2); None when unknown."""
    name = module.removeprefix("torch.")
    if name in UNKNOWN_FACTOR:
        return None
    if name in FIXED_FACTOR:
        factor = FIXED_FACTOR[name]
        if name == "Focus":  # space-to-depth /2, then its conv's own stride
            factor *= _int(args[2]) if len(args) > 2 else 1
        return Fraction(factor)
    if name in PLAIN_STRIDE_ARG:
        at = PLAIN_STRIDE_ARG[name]
        if at is None or len(args) <= at:
            return Fraction(1)
        return Fraction(_int(args[at])) if _int(args[at]) else None
    if name == "ResNetLayer":  # (c1, c2, s, is_first, ...): the first one is a stem conv /2 + max-pool /2
        return Fraction(4) if len(args) > 3 and args[3] is True else Fraction(_int(args[2]) or 1 if len(args) > 2 else 1)
    if name in ("nn.MaxPool2d", "nn.AvgPool2d"):
        kernel = _int(args[0]) if args else None
        stride = args[1] if len(args) > 1 else None
        stride = kernel if stride in (None, "None") else _int(stride)
        return Fraction(stride) if stride else None
    if name in ("nn.Upsample",):
        scale = args[1] if len(args) > 1 else None
        return Fraction(1, scale) if _int(scale) else None
    if name in ("ConvTranspose", "nn.ConvTranspose2d", "DWConvTranspose2d"):
        at = 2 if name == "ConvTranspose" else 3
        stride = _int(args[at]) if len(args) > at else 2 if name == "ConvTranspose" else 1
        return Fraction(1, stride) if stride else None
    if name == "Contract":
        return Fraction(_int(args[0]) or 2) if args else Fraction(2)
    if name == "Expand":
        return Fraction(1, _int(args[0]) or 2) if args else Fraction(1, 2)
    return Fraction(1)


def stride_label(stride: Fraction | None) -> str:
    """``P3/8`` for stride 8; plain numbers for anything that is not a power of two."""
    if stride is None:
        return "?"
    if stride.denominator == 1 and stride.numerator & (stride.numerator - 1) == 0:
        return f"P{int(math.log2(stride.numerator))}/{stride.numerator}"
    return str(stride)
