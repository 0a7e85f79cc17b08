"""Matches an official implementation's state_dict to a bundled module's, by the spec's ``official:`` rules.

Standalone on purpose (standard library only, no torch): yamlforge reads specs with it, and
``weights_runner.py`` imports it as a sibling file in the target's Python, where yamlforge may not be
installed. Names and shapes in, a report out; tensors are only ever asked for ``.shape`` and ``.reshape``.
In a spec:

```yaml
official:                                   # the paper authors' implementation of this module
  source: "rayleizhu/BiFormer ops/bra_legacy.py"
  class: BiLevelRoutingAttention            # our class it corresponds to (default: the first export)
  kwargs: {dim: dim, topk: topk, auto_pad: null}   # official constructor kwarg -> ours (null: no counterpart)
  keys:                                     # ordered regex renames, official -> ours; the first match applies
    - ['^wo\\.', 'proj.']
  reshape: ['^proj\\.weight$']              # our keys that take the official tensor reshaped (same numel)
```
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]
# checkpoint keys that hold the weights: mmdet/timm, YOLOv5/Ultralytics, and Ultralytics' "model": None + "ema"
WRAPPERS = ("state_dict", "model", "ema")


class MappingError(ValueError):
    """Official weights that cannot be mapped (no state_dict, an unmapped constructor argument); has a ``hint``."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class WeightMap:
    """How an official module's constructor kwargs and state_dict keys translate to ours."""

    source: str
    cls: str | None = None
    kwargs: tuple[tuple[str, str | None], ...] = ()
    keys: tuple[tuple[re.Pattern[str], str], ...] = ()
    reshape: tuple[re.Pattern[str], ...] = ()
    flat_stages: bool = False  # our names join nested stages with "_" where the official's use "." (timm features)

    def to_dict(self) -> dict:
        """JSON-friendly form (the spec's ``official:`` fields), read back by :meth:`from_dict`."""
        return {"source": self.source, "class": self.cls, "kwargs": dict(self.kwargs),
                "keys": [[p.pattern, r] for p, r in self.keys], "reshape": [p.pattern for p in self.reshape],
                "flat_stages": self.flat_stages}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightMap:
        """A map from validated ``official:`` fields (:func:`parse_official` validates them)."""
        keys = tuple((re.compile(pattern), replacement) for pattern, replacement in data.get("keys") or [])
        reshape = tuple(re.compile(pattern) for pattern in data.get("reshape") or [])
        kwargs = tuple((data.get("kwargs") or {}).items())
        return cls(data["source"], data.get("class"), kwargs, keys, reshape, bool(data.get("flat_stages")))

    def rename(self, official_key: str) -> str:
        """Our name for ``official_key``: the first rule that matches rewrites it; no match keeps it."""
        for pattern, replacement in self.keys:
            renamed, hits = pattern.subn(replacement, official_key, count=1)
            if hits:
                return renamed
        return official_key

    def constructor_kwargs(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Our constructor's keyword arguments for the official ``config`` (kwargs mapped to null are dropped)."""
        table = dict(self.kwargs)
        unknown = sorted(set(config) - set(table))
        if unknown:
            raise MappingError(
                f"official constructor argument(s) {', '.join(unknown)} have no entry in the spec's official.kwargs",
                hint="add them to official.kwargs (null when the bundled module has no counterpart)",
            )
        return {table[key]: value for key, value in config.items() if table[key] is not None}

    def match(self, official: Mapping[str, Shape], ours: Mapping[str, Shape]) -> WeightReport:
        """Pair official keys with ours by name, then check shapes (declared reshapes keep the element count)."""
        matched: dict[str, str] = {}
        reshape: dict[str, Shape] = {}
        mismatched: dict[str, tuple[Shape, Shape]] = {}
        unexpected = []
        flat = {name.replace(".", "_"): name for name in ours} if self.flat_stages else {}
        for key, shape in official.items():
            name = self.rename(key)
            name = flat.get(name.replace(".", "_"), name) if name not in ours else name
            if name not in ours or name in matched or name in mismatched:
                unexpected.append(key)
            elif tuple(shape) == tuple(ours[name]):
                matched[name] = key
            elif math.prod(shape) == math.prod(ours[name]) and any(p.search(name) for p in self.reshape):
                matched[name], reshape[name] = key, tuple(ours[name])
            else:
                mismatched[name] = (tuple(shape), tuple(ours[name]))
        missing = tuple(name for name in ours if name not in matched and name not in mismatched)
        return WeightReport(matched, reshape, missing, tuple(unexpected), mismatched)


@dataclass(frozen=True)
class WeightReport:
    """The outcome of matching an official state_dict to ours; ``complete`` when every tensor has its pair."""

    matched: dict[str, str]  # our key -> official key
    reshape: dict[str, Shape]  # our key -> the shape its official tensor takes (declared reshapes only)
    missing: tuple[str, ...]  # our keys no official tensor maps to
    unexpected: tuple[str, ...]  # official keys that map to none of ours (or to one already taken)
    mismatched: dict[str, tuple[Shape, Shape]]  # our key -> (official shape, our shape)

    @property
    def complete(self) -> bool:
        return self.filled and not self.unexpected

    @property
    def filled(self) -> bool:
        """Every tensor of ours gets an official one (extra official keys, a classifier head say, are allowed)."""
        return not (self.missing or self.mismatched)

    def state_dict(self, official: Mapping[str, Any]) -> dict[str, Any]:
        """The official tensors under our names, reshaped where declared (any object with ``.reshape``)."""
        return {
            ours: official[key].reshape(self.reshape[ours]) if ours in self.reshape else official[key]
            for ours, key in self.matched.items()
        }

    def to_dict(self) -> dict:
        return {"matched": self.matched, "reshape": self.reshape, "missing": self.missing,
                "unexpected": self.unexpected, "mismatched": self.mismatched}


def unwrap_checkpoint(checkpoint: Any) -> dict[str, Any]:
    """The state_dict in a checkpoint: plain, or under ``state_dict``/``model``/``ema`` (a mapping or a
    module), with DDP's ``module.`` prefixes removed."""
    weights = checkpoint
    while isinstance(weights, Mapping):  # wrappers may nest: {"model": {"state_dict": ...}}
        inner = next((weights[w] for w in WRAPPERS if weights.get(w) is not None), None)
        if inner is None:
            break
        weights = inner.state_dict() if callable(getattr(inner, "state_dict", None)) else inner
    if (
        not isinstance(weights, Mapping)
        or not weights
        or not all(isinstance(k, str) and hasattr(v, "shape") for k, v in weights.items())
    ):
        raise MappingError(
            "the checkpoint holds no state_dict (a mapping of parameter names to tensors)",
            hint="pass the file saved with torch.save(module.state_dict()) or a checkpoint with 'model'/'state_dict'",
        )
    return {key.removeprefix("module."): value for key, value in weights.items()}


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and value.isidentifier()


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# official.<field> -> (valid?, what it must be); every field but 'source' is optional
OFFICIAL_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "source": (lambda v: isinstance(v, str), "names the official repository and file"),
    "class": (_is_name, "names our class it corresponds to"),
    "kwargs": (
        lambda v: (
            isinstance(v, Mapping) and all(isinstance(k, str) and (t is None or _is_name(t)) for k, t in v.items())
        ),
        "maps official constructor argument names to ours (or null)",
    ),
    "keys": (
        lambda v: isinstance(v, list) and all(_is_strings(rule) and len(rule) == 2 for rule in v),
        "is a list of [official regex, our replacement] pairs",
    ),
    "reshape": (_is_strings, "is a list of regexes of our keys"),
    "flat_stages": (lambda v: isinstance(v, bool), "is true when our names join nested stages with '_' (timm)"),
}


def parse_official(data: Any, fail: Callable[[str | None, str], Exception]) -> WeightMap:
    """Validate a spec's ``official:`` mapping; ``fail(field, message)`` builds the error naming its line."""
    if not isinstance(data, Mapping) or "source" not in data or set(data) - set(OFFICIAL_FIELDS):
        raise fail("official", f"field 'official' is a mapping with 'source' and optional {', '.join(OFFICIAL_FIELDS)}")
    for name, (valid, meaning) in OFFICIAL_FIELDS.items():
        if name in data and not valid(data[name]):
            raise fail("official", f"field 'official.{name}' {meaning}, got {data[name]!r}")
    try:
        return WeightMap.from_dict(data)
    except re.error as exc:
        raise fail("official", f"field 'official': bad regex {exc.pattern!r}: {exc.msg}") from None
