"""The old -> new layer map between a base model's YAML rows and an edited model's: recorded by gen-yaml, or aligned.

Standalone on purpose (standard library only, no torch): gen-yaml writes the record with it and ``weights_runner.py``
imports it as a sibling file in the target's Python, where yamlforge may not be installed. Rows are the YAML's
``[from, repeats, module, args]`` lists in file order (backbone then head); a row's position is the index of its
layer in the model's ``nn.Sequential``, so ``model.<position>.`` prefixes its tensors.

gen-yaml's record is one comment line (the second of its output)::

    # yamlforge: layers 0-4>0-4 5-21>6-22 replaced=9>10 rows=22>23

``a-b>c-d``: base rows a..b are the new rows c..d, unchanged; ``replaced=`` base rows another module took the
place of; ``rows=`` how many rows the base and the model have. Base rows named nowhere were removed; new rows
named nowhere are new.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

RECORD_PREFIX = "# yamlforge: layers "
RECORD = re.compile(r"^#\s*yamlforge:\s*layers\s+(?P<body>[^\n]*)$", re.MULTILINE)
_PAIR = re.compile(r"(\d+)(?:-(\d+))?>(\d+)(?:-(\d+))?")
IMAGE = -1  # what layer 0's ``from: -1`` reads


@dataclass
class LayerMap:
    """Base row -> new row, for rows kept unchanged (``carried``) and rows another module replaced."""

    base_rows: int
    new_rows: int
    carried: dict[int, int] = field(default_factory=dict)
    replaced: dict[int, int] = field(default_factory=dict)

    @property
    def removed(self) -> list[int]:
        return [i for i in range(self.base_rows) if i not in self.carried and i not in self.replaced]

    @property
    def new(self) -> list[int]:
        """New rows without base weights of any kind (neither carried nor in a replaced row's place)."""
        taken = set(self.carried.values()) | set(self.replaced.values())
        return [j for j in range(self.new_rows) if j not in taken]

    @property
    def is_identity(self) -> bool:
        return self.base_rows == self.new_rows and not self.replaced and all(
            self.carried.get(i) == i for i in range(self.base_rows))

    def to_record(self) -> str:
        """The comment line gen-yaml writes (without its newline)."""
        parts = _ranges(sorted(self.carried.items()))
        if self.replaced:
            parts.append("replaced=" + ",".join(_ranges(sorted(self.replaced.items()))))
        parts.append(f"rows={self.base_rows}>{self.new_rows}")
        return RECORD_PREFIX + " ".join(parts)

    @classmethod
    def from_record(cls, text: str) -> LayerMap | None:
        """The map a YAML's header records; None when it records none (or one this version cannot read)."""
        found = RECORD.search("\n".join(line for line in text.splitlines()[:3]))
        if not found:
            return None
        carried: dict[int, int] = {}
        replaced: dict[int, int] = {}
        rows = None
        for token in found.group("body").split():
            name, _, value = token.rpartition("=")
            if name == "rows" and re.fullmatch(r"\d+>\d+", value):
                rows = tuple(int(v) for v in value.split(">"))
            elif name in ("", "replaced") and all(_PAIR.fullmatch(v) for v in value.split(",")):
                try:
                    for pair in value.split(","):
                        (replaced if name else carried).update(_expand(pair))
                except ValueError:  # a range whose two sides differ in length
                    return None
            else:
                return None
        return None if rows is None else cls(rows[0], rows[1], carried, replaced)

    def misfit(self, base: Sequence[list], new: Sequence[list]) -> str | None:
        """Why this (recorded) map does not describe ``base`` -> ``new``; None when it does."""
        if (len(base), len(new)) != (self.base_rows, self.new_rows):
            return f"it records {self.base_rows} -> {self.new_rows} rows, the files have {len(base)} -> {len(new)}"
        for old, now in sorted(self.carried.items()):
            if now >= len(new) or row_key(base[old]) != row_key(new[now]):
                return f"base row {old} is recorded as row {now}, which now runs another module or args"
        return None

    def freeze(self, count: int) -> int | list[int]:
        """What freezes, in the new model, the base's first ``count`` rows that it kept: a count while they are the
        new model's first rows, else their new indices."""
        kept = sorted(self.carried[i] for i in range(count) if i in self.carried)
        return len(kept) if kept == list(range(len(kept))) else kept

    @classmethod
    def from_dict(cls, data: dict) -> LayerMap:
        """The inverse of :meth:`to_dict` (JSON's string keys back to row numbers)."""
        return cls(data["base_rows"], data["new_rows"], {int(k): v for k, v in data["carried"].items()},
                   {int(k): v for k, v in data["replaced"].items()})

    def to_dict(self) -> dict:
        return {"carried": {str(k): v for k, v in sorted(self.carried.items())},
                "replaced": {str(k): v for k, v in sorted(self.replaced.items())},
                "removed": self.removed, "new": self.new, "base_rows": self.base_rows, "new_rows": self.new_rows}


def _ranges(pairs: list[tuple[int, int]]) -> list[str]:
    """``[(0, 0), (1, 1), (2, 3)]`` -> ``["0-1>0-1", "2>3"]``: runs where both sides count up by one."""
    runs: list[list[int]] = []
    for old, now in pairs:
        if runs and old == runs[-1][1] + 1 and now == runs[-1][3] + 1:
            runs[-1][1], runs[-1][3] = old, now
        else:
            runs.append([old, old, now, now])
    return [f"{a}>{c}" if a == b else f"{a}-{b}>{c}-{d}" for a, b, c, d in runs]


def _expand(text: str) -> dict[int, int]:
    a, b, c, d = _PAIR.fullmatch(text).groups()
    first, last, start = int(a), int(b if b is not None else a), int(c)
    if d is not None and int(d) - start != last - first:
        raise ValueError(text)
    return {first + k: start + k for k in range(last - first + 1)}


def row_key(row: list) -> tuple:
    """What must be equal for a row's weights to fit another: module, repeats and args (``from`` aside)."""
    _, repeats, module, args = row
    return module, json.dumps(repeats), json.dumps(args, sort_keys=True, default=str)


def inputs(rows: Sequence[list]) -> list[list[int]]:
    """Each row's ``from`` as absolute row numbers (``IMAGE`` for the image)."""
    out = []
    for i, row in enumerate(rows):
        entries = row[0] if isinstance(row[0], list) else [row[0]]
        out.append([max(i + e, IMAGE) if e < 0 else e for e in entries if isinstance(e, int)])
    return out


def align(base: Sequence[list], new: Sequence[list]) -> LayerMap:
    """The map a sequence diff over the rows gives: equal rows in order (their inputs, mapped through the map so far,
    break ties), then equal rows that moved (two rows swapped by hand), then rows of another module in the place of
    a base row between the same kept neighbours (replaced)."""
    base_keys, new_keys = [row_key(r) for r in base], [row_key(r) for r in new]
    base_in, new_in = inputs(base), inputs(new)

    def same_inputs(mapping: dict[int, int], i: int, j: int) -> bool:
        return [mapping.get(x, IMAGE if x == IMAGE else None) for x in base_in[i]] == new_in[j]

    mapping: dict[int, int] = {}
    for _ in range(2):  # the second pass breaks ties between equal rows by their inputs under the first's map
        previous = dict(mapping)
        pairs = _longest_common(len(base), len(new), lambda i, j, known=previous: (base_keys[i] == new_keys[j])
                                * (1 + same_inputs(known, i, j)))
        mapping = dict(pairs)
    in_order = sorted(mapping.items())
    _add_moves(mapping, base_keys, new_keys, lambda i, j: same_inputs(mapping, i, j))
    layer_map = LayerMap(len(base), len(new), mapping)
    layer_map.replaced = _replaced_in_gaps(in_order, set(mapping), set(mapping.values()), len(base), len(new))
    return layer_map


def _longest_common(n: int, m: int, weight: Callable[[int, int], int]) -> list[tuple[int, int]]:
    """Pairs (i, j), both increasing, of the largest total ``weight`` (0: may not pair)."""
    score = [[0] * (m + 1) for _ in range(n + 1)]
    for i in reversed(range(n)):
        for j in reversed(range(m)):
            w = weight(i, j)
            score[i][j] = max(score[i + 1][j], score[i][j + 1], w + score[i + 1][j + 1] if w else 0)
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        w = weight(i, j)
        if w and score[i][j] == w + score[i + 1][j + 1]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif score[i + 1][j] >= score[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _add_moves(mapping: dict[int, int], base_keys: list, new_keys: list, same_inputs: Callable[[int, int], bool]):
    """Pair each left-over base row with a left-over new row of the same key (same inputs first, then nearest)."""
    for i in [i for i in range(len(base_keys)) if i not in mapping]:
        taken = set(mapping.values())
        free = [j for j in range(len(new_keys)) if j not in taken and new_keys[j] == base_keys[i]]
        if free:
            mapping[i] = min(free, key=lambda j: (not same_inputs(i, j), abs(j - i)))


def _replaced_in_gaps(in_order: list[tuple[int, int]], used_base: set[int], used_new: set[int], n: int,
                      m: int) -> dict[int, int]:
    """Between two consecutive in-order pairs, as many left-over base rows as new ones pair up in order: replaced
    rows (ten backbone rows and one new backbone row are removed rows and a new one)."""
    replaced = {}
    bounds = [(-1, -1), *in_order, (n, m)]
    for (a, b), (c, d) in itertools.pairwise(bounds):
        olds = [i for i in range(a + 1, c) if i not in used_base]
        news = [j for j in range(b + 1, d) if j not in used_new]
        if len(olds) == len(news):
            replaced.update(zip(olds, news))
    return replaced


def layer_map(base: Sequence[list], new: Sequence[list], yaml_text: str) -> tuple[LayerMap, str | None]:
    """The recorded map when it fits the files, else the aligned one with the reason the record was not used."""
    recorded = LayerMap.from_record(yaml_text)
    if recorded is None:
        return align(base, new), None
    why = recorded.misfit(base, new)
    if why is None:
        return recorded, None
    return align(base, new), f"the layer map gen-yaml recorded no longer fits ({why}): the rows were aligned instead"


def fits_whole(row: dict) -> bool:
    """A row of the carry report that got base tensors and none of another shape. A base where no row does is not
    this model's (another model, another scale), even if a few tensors of a head or a step counter fit."""
    return bool(row["carried"]) and not row["mismatched"]


def row_prefix(index: int, names: Sequence[str]) -> str:
    """``model.<name>.``: the state_dict prefix of row ``index`` (``names``: the nn.Sequential's child names)."""
    return f"model.{names[index]}."


def yaml_rows(data: Any) -> list[list]:
    """The ``backbone`` + ``head`` rows of a model YAML dict (empty when it has none)."""
    if not isinstance(data, dict):
        return []
    return [list(r) for section in ("backbone", "head") for r in (data.get(section) or [])
            if isinstance(r, (list, tuple)) and len(r) == 4]
