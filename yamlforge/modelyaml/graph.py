"""A model YAML as a graph of layers: rows as data, ``from`` references, edits by base numbers, slots and strides."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

from ..errors import YamlforgeError
from .strides import stride_label

SECTIONS = ("backbone", "head")
INPUT = "input"  # producer of layer 0's ``-1``: the image


class SourceRow(NamedTuple):
    """A base row as read from the file: its section, 1-based line, value and how its args are written."""

    section: str
    line: int
    value: Any
    args_text: str | None = None  # None: not written as one flow list; ``repr`` of the args stands in


@dataclass
class Ref:
    """One entry of a ``from``: the layer it reads (base index, new-layer key or INPUT), which of its outputs, and
    how it is written. ``output`` is 0 except for a multi-output (backbone) layer, whose outputs take consecutive
    index slots: the entry names slot ``first slot of producer + output``."""

    producer: Hashable
    relative: bool
    output: int = 0


@dataclass
class Layer:
    """A layer of the compiled model: base layers have an int ``key`` and their ``line``; inserted ones neither."""

    key: Hashable  # base index, or ("new", k)
    refs: list[Ref]
    many: bool  # ``from`` written as a list
    repeats: Any
    module: str
    args: list[Any]
    args_text: str
    section: str | None = None  # of a base layer
    line: int | None = None  # of a base layer, 1-based, for error messages
    changed: bool = False  # module / repeats / args rewritten by a replace
    anchor: tuple[Hashable, str] | None = None  # (base index, "after" | "before"): where an inserted row is written
    rewired: set[int] = field(default_factory=set)  # ref positions an edit pointed at another producer
    edited_by: str | None = None  # the option that created or replaced it, for messages
    outputs: int = 1  # index slots it takes: K for a backbone module returning K feature maps
    comment: str | None = None  # trailing comment of an inserted row (default: its slot number)

    @property
    def is_base(self) -> bool:
        return isinstance(self.key, int)


Slot = tuple[Hashable, int]  # (layer key, output): what one index slot holds


class RowChange(NamedTuple):
    """One line of gen-yaml's changed-rows table."""

    index: str
    source: str
    repeats: str
    module: str
    args: str
    status: str  # new | backbone | replaced | rewired | renumbered | removed


class Placement(NamedTuple):
    """A layer of the output at its first slot with its ``from`` numbers, next to its base row's (None: new)."""

    layer: Layer
    slot: int
    from_values: list[int]
    base_slot: int | None = None
    base_from: list[int] | None = None

    @property
    def from_written(self) -> list[int] | int:
        return self.from_values if self.layer.many else self.from_values[0]

    @property
    def status(self) -> str | None:
        """How the row differs from the base; None when only its slot (or nothing) changed."""
        if self.base_slot is None:
            return "new" if self.layer.anchor is not None else "backbone"
        if self.layer.changed:
            return "replaced"
        if self.from_values != self.base_from:
            return "rewired" if self.layer.rewired else "renumbered"
        return None


def slot_label(position: int, outputs: int) -> str:
    """``7``, or ``0-3`` for a layer taking four slots."""
    return str(position) if outputs == 1 else f"{position}-{position + outputs - 1}"


def slot_numbers(layers: Iterable[Layer]) -> dict[Hashable, int]:
    """Each layer's first index slot: the running sum of the slots the layers before it take."""
    numbers, slot = {}, 0
    for layer in layers:
        numbers[layer.key] = slot
        slot += layer.outputs
    return numbers


def from_values(layer: Layer, position: int, positions: dict[Hashable, int]) -> list[int]:
    """The ``from`` numbers of ``layer`` at slot ``position``, ``positions`` giving every layer's first slot."""
    values = []
    for ref in layer.refs:
        target = -1 if ref.producer == INPUT else positions[ref.producer] + ref.output
        values.append(target - position if ref.relative or ref.producer == INPUT else target)
    return values


def _read_refs(slot: int, f: Any, where: str) -> list[Ref]:
    """A row's ``from`` as refs holding absolute slot numbers (resolved to layers once every row is read)."""
    entries = list(f) if isinstance(f, list) else [f]
    if not entries or not all(isinstance(e, int) and not isinstance(e, bool) for e in entries):
        raise YamlforgeError(f"layer {slot}: 'from' must be a layer index or a list of them, got {f!r}", where=where)
    refs = []
    for e in entries:
        if e >= 0:
            refs.append(Ref(e, relative=False))
        elif slot + e >= 0 or (slot == 0 and e == -1):
            refs.append(Ref(slot + e if slot + e >= 0 else INPUT, relative=True))
        else:
            raise YamlforgeError(f"layer {slot}: from {e} points before the first layer", where=where)
    return refs


def output_strides(layers: list[Layer], factor: Callable[[Layer], Any],
               from_last_input: frozenset[str] = frozenset()) -> dict[Slot, Fraction | None]:
    """Stride of every (layer, output), input = 1: its input's stride times its own factor; None when unknown.

    ``factor(layer)`` is a Fraction (or None) for a one-output layer and a tuple of them, one per output
    relative to its input, for a multi-output one. A layer's input is its first ``from`` entry, its last for
    the modules in ``from_last_input`` (the target's ``stride_from_last_input``).
    """
    out: dict[Slot, Fraction | None] = {(INPUT, 0): Fraction(1)}
    for layer in layers:
        source = layer.refs[-1] if layer.module in from_last_input else layer.refs[0]
        before, own = out.get((source.producer, source.output)), factor(layer)
        if not isinstance(own, tuple) or len(own) != layer.outputs:
            own = (own,) if layer.outputs == 1 and not isinstance(own, tuple) else (None,) * layer.outputs
        for k, each in enumerate(own):
            out[layer.key, k] = None if before is None or each is None else before * each
    return out


class ModelGraph:
    """The layers of a model YAML, edited by base layer numbers.

    Layer numbers are index slots, numbered the way the patched target numbers them: a backbone-role layer with K
    outputs (``outputs(module, args)`` says K) takes K consecutive slots, later layers shift by K - 1, and a ``from``
    naming slot p + k reads the layer's output k.
    """

    def __init__(self, rows: list[SourceRow], where: str = "<yaml>",
                 outputs: Callable[[str, list], int] | None = None):
        self.where = where
        self._outputs = outputs or (lambda module, args: 1)
        self.base: list[Layer] = []
        slot = 0
        for row in rows:
            self.base.append(self._read_layer(len(self.base), slot, row))
            slot += self.base[-1].outputs
        self.base_slot: dict[Hashable, int] = slot_numbers(self.base)
        self.slot_owner: dict[int, Slot] = {self.base_slot[b.key] + k: (b.key, k) for b in self.base
                                            for k in range(b.outputs)}
        self._resolve_base_refs()
        self.layers: list[Layer] = [self._copy(layer) for layer in self.base]
        self.removed: set[int] = set()
        self.swapped: set[int] = set()  # base layers of the backbone section a swap_backbone replaced
        self._tails: dict[Slot, Slot] = {}  # (base layer, output) -> the last layer inserted after it
        self._new = 0
        self._validate_refs(self.base)

    # ------------------------------------------------------------ reading

    def _read_layer(self, index: int, slot: int, row: SourceRow) -> Layer:
        """Row ``index`` starting at ``slot``; its refs hold absolute slot numbers until _resolve_base_refs."""
        where = f"{self.where}:{row.line}"
        if not isinstance(row.value, list) or len(row.value) != 4:
            raise YamlforgeError(f"layer {slot} is not a [from, repeats, module, args] row", where=where)
        f, n, module, args = row.value
        refs = _read_refs(slot, f, where)
        if not isinstance(module, str) or not isinstance(args, list):
            raise YamlforgeError(f"layer {slot}: module must be a name and args a list", where=where)
        args_text = row.args_text if row.args_text is not None else repr(list(args))
        return Layer(index, refs, isinstance(f, list), n, module, list(args), args_text, row.section, row.line,
                     outputs=max(1, self._outputs(module, list(args))))

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
                     layer.repeats, layer.module, layer.args, layer.args_text, layer.section, layer.line,
                     outputs=layer.outputs)

    def _validate_refs(self, layers: list[Layer]) -> None:
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
        if layer.is_base:
            return f"layer {self.base_slot[layer.key]}"
        return f"new layer {layer.module} ({layer.edited_by})"

    def where_of(self, layer: Layer) -> str:
        if layer.line is not None:
            return f"{self.where}:{layer.line}"
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
        """The current layer that holds base slot ``index`` (any slot of a multi-output layer); errors name
        ``option``."""
        key, _ = self.base_slot_of(index, option)
        return self.current(key)

    def current(self, key: Hashable) -> Layer:
        """The layer of the output with ``key``."""
        return next(layer for layer in self.layers if layer.key == key)

    def position(self, key: Hashable) -> int:
        return next(i for i, layer in enumerate(self.layers) if layer.key == key)

    def consumers(self, key: Hashable, output: int | None = None) -> list[tuple[Layer, int]]:
        """(layer, ref position) of every ``from`` entry reading ``key`` (only its ``output`` when given)."""
        return [(layer, j) for layer in self.layers for j, ref in enumerate(layer.refs)
                if ref.producer == key and (output is None or ref.output == output)]

    def inserted_by(self, option: str) -> Layer:
        """The new layer the edit ``option`` inserted."""
        return next(x for x in self.layers if x.edited_by == option and not x.is_base)

    # ------------------------------------------------------------ edits (numbers are base slot numbers)

    def _new_layer(self, module: str, args: list[Any], args_text: str, repeats: Any, option: str) -> Layer:
        self._new += 1
        return Layer(("new", self._new), [], False, repeats, module, args, args_text, edited_by=option)

    def replace(self, index: int, module: str, args: list[Any], args_text: str, repeats: Any, option: str) -> Layer:
        """Swap layer ``index``'s module, args and repeats; its inputs and consumers stay."""
        layer = self.layer(index, option)
        if layer.changed:
            raise YamlforgeError(f"layer {index} is replaced twice", where=option)
        outputs = max(1, self._outputs(module, args))
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
        self._check_removable(index, layer, option)
        source = layer.refs[0]
        self.layers.remove(layer)
        self.removed.add(layer.key)
        for consumer, j in self.consumers(layer.key):
            consumer.refs[j] = Ref(source.producer, consumer.refs[j].relative, source.output)
            consumer.rewired.add(j)
        return layer

    def _check_removable(self, index: int, layer: Layer, option: str) -> None:
        """One output, one input, no other edit on it, and not the last row of its section."""
        if layer.outputs != 1:
            raise YamlforgeError(f"layer {index} ({layer.module}) has {layer.outputs} outputs, so its readers cannot "
                                 "all be rewired to its single input; it cannot be removed", where=option,
                                 hint="gen-yaml --backbone MODULE swaps a whole backbone section")
        if len(layer.refs) != 1:
            raise YamlforgeError(f"layer {index} ({layer.module}) reads {len(layer.refs)} layers, so its readers "
                                 "cannot be rewired to a single input; it cannot be removed", where=option)
        if layer.changed or any(x.anchor is not None and x.anchor[0] == layer.key for x in self.layers):
            raise YamlforgeError(f"layer {index} is used by another edit and cannot also be removed", where=option)
        left = [x for x in self.layers if x.section == layer.section]
        new_rows = [x for x in self.layers if x.anchor and self.base[x.anchor[0]].section == layer.section]
        if len(left) == 1 and not new_rows:
            raise YamlforgeError(f"layer {index} is the only row of '{layer.section}'; a section cannot be empty",
                                 where=option)

    def swap_backbone(self, module: str, args: list[Any], args_text: str, strides: tuple[Fraction, ...],
                      old_strides: dict[Slot, Fraction | None], option: str) -> Layer:
        """Replace every row of ``backbone:`` by one layer with ``len(strides)`` outputs reading the image.

        Each head entry that read the old backbone now reads the new output whose stride (``strides``, relative to
        the image) equals the stride of what it read (``old_strides``); no such output is an error naming the head
        layer. Call it before other edits: their numbers then name head layers of the base file.
        """
        if self.swapped or self._new or self.removed or any(x.changed for x in self.layers):
            raise YamlforgeError("--backbone is applied first, once; other edits come after it", where=option)
        old = {b.key for b in self.base if b.section == SECTIONS[0]}
        if not old:
            raise YamlforgeError("the base has no backbone rows to replace", where=option)
        new = self._new_layer(module, args, args_text, 1, option)
        new.refs, new.outputs = [Ref(INPUT, relative=True)], len(strides)
        new.comment = ": " + ", ".join(stride_label(s) for s in strides)
        for layer in self.layers:
            for j, ref in enumerate(layer.refs):
                if layer.key not in old and ref.producer in old:
                    layer.refs[j] = Ref(new.key, ref.relative, self._output_at(layer, ref, new, strides, old_strides))
                    layer.rewired.add(j)
        self.layers = [new] + [x for x in self.layers if x.key not in old]
        self.swapped = old
        return new

    def _output_at(self, layer: Layer, ref: Ref, new: Layer, strides: tuple[Fraction, ...],
                   old_strides: dict[Slot, Fraction | None]) -> int:
        """The output of the new backbone ``new`` with the stride of the old output ``ref`` reads (the last such)."""
        stride = old_strides.get((ref.producer, ref.output))
        read = f"backbone layer {self.base_slot[ref.producer] + ref.output} ({self.base[ref.producer].module})"
        if stride is None:
            raise YamlforgeError(f"{self.describe(layer)} reads {read}, whose stride cannot be worked out, so "
                                 f"the {new.module} output it should read is unknown", where=self.where_of(layer))
        matches = [k for k, s in enumerate(strides) if s == stride]
        if not matches:
            raise YamlforgeError(f"{self.describe(layer)} reads {read} at {stride_label(stride)}, but {new.module} "
                                 f"has no output at that stride (its outputs{new.comment})",
                                 where=self.where_of(layer),
                                 hint="pick a backbone with that output, or a base whose head reads only these")
        return matches[-1]

    def validate(self) -> None:
        self._validate_refs(self.layers)

    # ------------------------------------------------------------ strides

    # ------------------------------------------------------------ the result

    def placements(self) -> list[Placement]:
        """Every layer of the output at its slot, with its ``from`` numbers now and (base layers) in the base."""
        self.validate()
        positions = slot_numbers(self.layers)
        base_positions = self.base_slot | {INPUT: -1}
        placed = []
        for layer in self.layers:
            slot = positions[layer.key]
            if not layer.is_base:
                placed.append(Placement(layer, slot, from_values(layer, slot, positions)))
                continue
            base_slot = self.base_slot[layer.key]
            placed.append(Placement(layer, slot, from_values(layer, slot, positions), base_slot,
                                    from_values(self.base[layer.key], base_slot, base_positions)))
        return placed

    def changes(self, placements: list[Placement]) -> list[RowChange]:
        """The changed-rows table: new, replaced and rewired rows, then removed ones (the old backbone as one line)."""
        rows = [RowChange(slot_label(p.slot, p.layer.outputs), str(p.from_written), str(p.layer.repeats),
                          p.layer.module, p.layer.args_text, p.status) for p in placements if p.status]
        for index in sorted(self.removed):
            old = self.base[index]
            rows.append(RowChange(f"({slot_label(self.base_slot[index], old.outputs)})", "", str(old.repeats),
                                  old.module, old.args_text, "removed"))
        if self.swapped:
            last = self.base[max(self.swapped)]
            slots = f"({min(self.swapped)}-{self.base_slot[last.key] + last.outputs - 1})"
            rows.append(RowChange(slots, "", "", f"backbone: {len(self.swapped)} rows", "", "removed"))
        return rows
