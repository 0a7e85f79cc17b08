"""A study's variants as gen-yaml edits: ``--module/--at`` rows, ``--variant "NAME: EDITS"`` and a variants file.

A variant is a name and the gen-yaml edit options that make it from the base, kept as text (``--insert-after
6=SHSA``) in the plan; :func:`gen_request` turns them into the request gen-yaml compiles, so a study takes exactly the
edits gen-yaml takes and refuses what it refuses.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import YamlforgeError
from ..modelyaml.compile import GenRequest
from ..modelyaml.edits import EDIT_OPS, RESIDUAL_PREFIX, parse_backbone, parse_edit, parse_replace_all

BASE_ROW = "base"
# gen-yaml's edit options a variant takes; --in limits the --replace-all before it, --set configures --backbone
EDIT_OPTIONS = tuple(f"--{op}" for op in EDIT_OPS) + ("--replace-all", "--backbone")
MODIFIERS = ("--in", "--set")
NAME = re.compile(r"[A-Za-z0-9][\w.+-]*")
EXAMPLE = 'shsa6: --insert-after 6=SHSA'


@dataclass(frozen=True)
class VariantSpec:
    """A row of the study before gen-yaml sees it: its name and its edits, one ``--option value`` string each."""

    name: str
    edits: tuple[str, ...]
    where: str = field(default="--variant", compare=False)  # what an error about it names


def module_variants(modules: list[str], at: tuple[int, ...], *, residual: bool = False) -> list[VariantSpec]:
    """``--module M --at 4,6``: one row per module and position (positions first), ``MODULE-atN``; with
    ``residual``, the form x + MODULE(x), ``MODULE-res-atN``."""
    specs = []
    for module in modules:
        short = re.sub(r"\W+", "", module.partition("(")[0]) or "module"
        prefix = RESIDUAL_PREFIX if residual else ""
        specs += [VariantSpec(f"{short}{'-res' if residual else ''}-at{n}", (f"--insert-after {n}={prefix}{module}",),
                              "--module") for n in at]
    return specs


def parse_variant(text: str, where: str = "--variant") -> VariantSpec:
    """``"shsa6: --insert-after 6=SHSA --remove 9"`` (shell words) -> its name and edits; bad syntax is one error
    naming ``where``."""
    name, colon, options = str(text).partition(":")
    if not colon:
        raise YamlforgeError(f"{where} {text!r} is not NAME: EDITS", where=where, hint=f'--variant "{EXAMPLE}"')
    try:
        words = shlex.split(options)
    except ValueError as exc:
        raise YamlforgeError(f"{where} {name.strip()}: {exc}", where=where) from None
    return variant_of(name.strip(), words, where)


def variant_of(name: str, words: list[str], where: str) -> VariantSpec:
    """A variant from its name and its options as words (``["--insert-after", "6=SHSA"]``), syntax checked."""
    if not NAME.fullmatch(name):
        raise YamlforgeError(f"{where}: '{name}' is not a variant name (letters, digits, '_', '.', '+', '-')",
                             where=where, hint=f'--variant "{EXAMPLE}"')
    edits = _edit_strings(words, f"{where} {name}")
    try:
        gen_request(edits, None, where=f"{where} {name}")  # the edit syntax, checked now (no file is read)
    except YamlforgeError as exc:
        raise YamlforgeError(f"{where} {name}: {exc.message}", where=exc.where, hint=exc.hint) from None
    return VariantSpec(name, tuple(edits), where)


def _edit_strings(words: list[str], where: str) -> list[str]:
    """``["--insert-after", "6=SHSA", "--in=head"]`` -> ``["--insert-after 6=SHSA", "--in head"]``."""
    edits, rest = [], list(words)
    while rest:
        option, _, value = rest.pop(0).partition("=")
        if option not in EDIT_OPTIONS + MODIFIERS:
            raise YamlforgeError(f"{where}: '{option}' is not a gen-yaml edit ({', '.join(EDIT_OPTIONS)})",
                                 where=where, hint=f'--variant "{EXAMPLE}"')
        if not value:
            if not rest:
                raise YamlforgeError(f"{where}: {option} needs a value", where=where)
            value = rest.pop(0)
        edits.append(f"{option} {value}")
    if not edits:
        raise YamlforgeError(f"{where} has no edit", where=where, hint=f'--variant "{EXAMPLE}"')
    return edits


def gen_request(edits: tuple[str, ...] | list[str], base: str | None, **options) -> GenRequest:
    """The gen-yaml request of ``base`` with ``edits`` (``--option value`` strings), ``options`` its other fields."""
    where = options.pop("where", "--variant")
    layer_edits, replace_all, backbone, sets, section = [], [], None, [], None
    for edit in edits:
        option, _, value = edit.partition(" ")
        match option:
            case "--in":
                section = value
            case "--set":
                sets.append(value)
            case "--replace-all":
                replace_all.append(value)
            case "--backbone":
                backbone = value
            case _:
                layer_edits.append(parse_edit(option.removeprefix("--"), value))
    if (section is not None and not replace_all) or (sets and backbone is None):
        raise YamlforgeError(f"{where}: --in goes with --replace-all and --set with --backbone", where=where)
    return GenRequest(base, layer_edits, backbone=None if backbone is None else parse_backbone(backbone, sets=sets),
                      replace_all=[parse_replace_all(value, section) for value in replace_all], **options)


def read_variants_file(path: Path) -> list[VariantSpec]:
    """``--variants FILE.yaml``: ``variants:`` mapping each name to its edits (a string, or a list of strings)."""
    import yaml

    where = f"--variants {path}"
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise YamlforgeError(f"cannot read the variants file: {exc.strerror}", where=where) from None
    except yaml.YAMLError as exc:
        raise YamlforgeError(f"the variants file is not YAML: {str(exc).splitlines()[0]}", where=where) from None
    listed = raw.get("variants") if isinstance(raw, dict) else None
    if not isinstance(listed, dict) or not listed:
        raise YamlforgeError("the variants file needs a 'variants:' mapping of names to gen-yaml edits", where=where,
                             hint="variants: {shsa6: --insert-after 6=SHSA, c3: --replace 6=C3}")
    specs = []
    for name, edits in listed.items():
        if isinstance(edits, str):
            specs.append(parse_variant(f"{name}: {edits}", where))
        elif isinstance(edits, list) and edits and all(isinstance(e, str) for e in edits):
            # one edit per item, its value as written (spaces in MODULE(a, b) need no quotes here)
            specs.append(variant_of(str(name), [w for edit in edits for w in edit.strip().split(None, 1)], where))
        else:
            raise YamlforgeError(f"variant {name}: its edits must be a string or a list of strings", where=where)
    return specs


def check_names(specs: list[VariantSpec]) -> None:
    """Each row's name once (it names the row and its trials' folders), never the base's."""
    seen: set[str] = {BASE_ROW}
    for spec in specs:
        if spec.name in seen:
            what = "names the base row" if spec.name == BASE_ROW else "is given twice"
            raise YamlforgeError(f"variant name '{spec.name}' {what}", where=spec.where,
                                 hint="give each variant its own name")
        seen.add(spec.name)
