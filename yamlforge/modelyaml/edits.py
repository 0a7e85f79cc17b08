"""The layer-edit language of gen-yaml and recipes: ``N=MODULE(a, name=b)*3``, ``--backbone``, ``--replace-all``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import YamlforgeError
from .graph import SECTIONS
from .load import load_nodes
from .timm import PREFIX as TIMM_PREFIX
from .timm import is_timm

EDIT_OPS = ("replace", "insert-after", "insert-before", "remove")
RESIDUAL_PREFIX = "residual:"  # ``N=residual:MODULE``: the row runs x + MODULE(x) (yamlforge.modelyaml.modules)
_LAYER = re.compile(r"\s*(?:layer)?(\d+)\s*")
_MODULE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*(?:\((?P<args>.*)\))?\s*(?:\*\s*(?P<repeats>[-+]?\d+))?\s*", re.DOTALL)

Args = tuple[tuple[str | None, str], ...]  # (name or None, YAML text of the value)


@dataclass(frozen=True)
class LayerEdit:
    """One edit of a model YAML's layers; ``layer`` is a BASE layer number whatever other edits do.

    Syntax (CLI value or recipe string): ``N=MODULE``, ``N=MODULE(a, b, name=c)``, ``N=MODULE(a)*3`` for 3 repeats
    (default 1); ``N`` may be written ``layerN``; ``--remove`` takes just ``N``. ``N=residual:MODULE(a)`` is the
    residual form ``x + MODULE(x)`` (a module that keeps its width, written as a ResidualWrap row).
    """

    op: str  # one of EDIT_OPS, or "backbone" for --backbone (``layer`` unused)
    layer: int
    module: str | None = None
    args: Args = ()
    repeats: int | None = None
    option: str = ""  # ``--replace 4=SHSA``: what error messages name
    residual: bool = False  # ``residual:MODULE``

    @property
    def has_args(self) -> bool:
        return bool(self.args)


def split_top_level(text: str) -> list[str]:
    """``a, [b, c], 'd,e'`` -> ``['a', '[b, c]', "'d,e'"]``."""
    parts, depth, quote, current = [], 0, None, []
    for c in text:
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(c)
    parts.append("".join(current).strip())
    if depth or quote:
        raise ValueError("unbalanced brackets or quotes")
    return parts


def parse_edit(op: str, value: Any) -> LayerEdit:
    """Parse ``--<op> <value>``; bad syntax is one error naming the option."""
    option = f"--{op} {value}"
    value = str(value)
    if op not in EDIT_OPS:
        raise YamlforgeError(f"unknown edit '{op}' (known: {', '.join(EDIT_OPS)})", where=option)
    number, _, module_text = value.partition("=")
    match = _LAYER.fullmatch(number)
    if not match:
        raise YamlforgeError(f"'{number.strip()}' is not a layer number (write N or layerN, as in the base file)",
                             where=option)
    layer = int(match.group(1))
    if op == "remove":
        if module_text:
            raise YamlforgeError("--remove takes only a layer number", where=option)
        return LayerEdit(op, layer, option=option)
    if not module_text.strip():
        raise YamlforgeError(f"missing module: write --{op} {layer}=MODULE or {layer}=MODULE(args)", where=option)
    residual = module_text.strip().startswith(RESIDUAL_PREFIX)
    module, args, repeats = _parse_module(module_text.strip().removeprefix(RESIDUAL_PREFIX), option)
    return LayerEdit(op, layer, module, args, repeats, option, residual)


def parse_backbone(value: Any, option: str | None = None, sets: list[str] | tuple[str, ...] = ()) -> LayerEdit:
    """Parse ``--backbone MODULE`` or ``--backbone MODULE(a, name=b)``: the module that replaces ``backbone:``;
    ``timm:NAME(key=value)`` names a timm model, and ``sets`` (``--set KEY=VALUE``) add to its options."""
    option = option or f"--backbone {value}"
    value = str(value).strip()
    if not value:
        raise YamlforgeError("missing module: write --backbone MODULE or MODULE(args)", where=option)
    timm = is_timm(value)
    module, args, repeats = _parse_module(value.removeprefix(TIMM_PREFIX), option)
    if repeats not in (None, 1):
        raise YamlforgeError("a backbone is one layer; it takes no repeats", where=option)
    if sets and not timm:
        raise YamlforgeError("--set gives a timm model's create_model options; the backbone is not timm:NAME",
                             where="--set", hint="--backbone timm:resnet18 --set drop_path_rate=0.1")
    return LayerEdit("backbone", 0, TIMM_PREFIX + module if timm else module, args + parse_sets(sets), None, option)


def parse_sets(sets: list[str] | tuple[str, ...]) -> Args:
    """``--set KEY=VALUE`` options as named args (``(("drop_path_rate", "0.1"),)``); each must be one YAML value."""
    args: Args = ()
    for text in sets:
        key, sep, given = text.partition("=")
        if not (sep and key.strip().isidentifier() and given.strip()):
            raise YamlforgeError(f"--set {text!r} is not KEY=VALUE", where="--set", hint="--set drop_path_rate=0.1")
        parse_value(given.strip(), f"--set {text}")
        args += ((key.strip(), given.strip()),)
    return args


@dataclass(frozen=True)
class ReplaceAll:
    """``--replace-all OLD=NEW [--in SECTION]``: every base layer running OLD (in SECTION only, if given) runs NEW,
    keeping its args, repeats and wiring (``HGBlock=HGBlock_SHSA`` swaps in a fusion variant, see
    yamlforge.patch.fusion)."""

    old: str
    new: str
    section: str | None = None
    option: str = ""


def parse_replace_all(value: Any, section: str | None = None) -> ReplaceAll:
    """Parse ``--replace-all OLD=NEW``; ``section`` is ``backbone``, ``head`` or None (both)."""
    option = f"--replace-all {value}"
    old, _, new = str(value).partition("=")
    old, new = old.strip(), new.strip()
    if not (old.replace(".", "_").isidentifier() and new.replace(".", "_").isidentifier()):
        raise YamlforgeError("expected OLD=NEW, two module names (e.g. HGBlock=HGBlock_SHSA); NEW takes OLD's args",
                             where=option)
    if section is not None and section not in SECTIONS:
        raise YamlforgeError(f"--in takes {' or '.join(SECTIONS)}, got '{section}'", where="--in")
    return ReplaceAll(old, new, section, option)


def _parse_module(module_text: str, option: str) -> tuple[str, Args, int | None]:
    """``MODULE(a, name=b)*3`` -> (module, args as (name, YAML text), repeats or None)."""
    match = _MODULE.fullmatch(module_text)
    if not match:
        raise YamlforgeError(f"cannot read '{module_text}': expected MODULE, MODULE(a, b) or MODULE(a)*3",
                             where=option)
    args: list[tuple[str | None, str]] = []
    if match.group("args") is not None and match.group("args").strip():
        try:
            pieces = split_top_level(match.group("args"))
        except ValueError:
            raise YamlforgeError("unbalanced brackets or quotes in the module's args", where=option) from None
        for piece in pieces:
            named = re.fullmatch(r"([A-Za-z_]\w*)\s*=(?!=)\s*(.+)", piece, re.DOTALL)
            name, text = (named.group(1), named.group(2).strip()) if named else (None, piece)
            if not text:
                raise YamlforgeError("empty argument in the module's args", where=option)
            if name is None and any(n for n, _ in args):
                raise YamlforgeError("positional argument after a named one", where=option)
            parse_value(text, option)
            args.append((name, text))
    repeats = None
    if match.group("repeats") is not None:
        repeats = int(match.group("repeats"))
        if repeats < 1:
            raise YamlforgeError(f"repeats must be 1 or more, got {repeats}", where=option)
    return match.group(1), tuple(args), repeats


def parse_value(text: str, option: str) -> Any:
    """One YAML flow value, as the model YAML will hold it."""
    try:
        loaded, _ = load_nodes(f"[{text}]", where=option, what="value")
    except YamlforgeError:
        loaded = None
    if not isinstance(loaded, list) or len(loaded) != 1:
        raise YamlforgeError(f"'{text}' is not a single YAML value", where=option)
    return loaded[0]


def yaml_text(value: Any) -> str:
    """A spec default written the way model YAMLs write values (``None``, ``True``, ``"nearest"``)."""
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(yaml_text(v) for v in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yaml_text(k)}: {yaml_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z_][\w.]*", value) and value.lower() not in (
            "true", "false", "null", "none", "yes", "no", "on", "off", "y", "n")
        return value if plain else json.dumps(value)
    raise YamlforgeError(f"cannot write the default {value!r} into a model YAML")
