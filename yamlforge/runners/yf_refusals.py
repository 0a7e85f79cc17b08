"""Shared by the adopt probes (runs in the target's Python): the real cause behind a failure, as fields and one line.

A class that runs at one map size only, a name nothing defines (a class cut out of a file without its imports) and a
compiled submodule a package imports but this Python has not built are each said as what they are, not as the
first error they raise.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

if __package__:  # imported as yamlforge.runners.yf_refusals (the tests)
    from . import yf_probe
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_probe

PRIVATE_PREFIX = "_yamlforge_adopted"  # probing.PACKAGE_ALIAS: the name a probed package is imported under
TYPICAL_SIZES = (7, 8, 14, 16, 28, 32, 56, 64)  # the fixed grids of papers' blocks (224 / 32, 224 / 16, ...)
MAX_FIXED_SIZE = 128
EXTENSION_FAILURES = ("NotImplementedError", "'NoneType' object", "_ext", "CUDA", "cuda")  # a compiled op missing
EXTENSION_NAME = re.compile(r"'([\w.]*_ext\w*)'")
UNDEFINED = re.compile(r"NameError: name '(\w+)' is not defined")
NO_MODULE = re.compile(r"ModuleNotFoundError: No module named '(\w+)")
CANNOT_IMPORT = re.compile(r"cannot import name '(\w+)' from (?:partially initialized module )?'([\w.]+)'")


def failure_fields(error: str) -> dict:
    """A refusal's fields read from its one-line ``error``: ``extension`` when a compiled operator failed (the
    ``*_ext`` modules it names in ``names``), ``undefined`` with the names a NameError says nothing defines,
    ``no_module`` with the top-level name of a module an import did not find."""
    fields = {}
    if any(word in error for word in EXTENSION_FAILURES):
        fields["extension"] = {"names": EXTENSION_NAME.findall(error)}
    names = list(dict.fromkeys(UNDEFINED.findall(error)))
    if names:
        fields["undefined"] = names
    missing = NO_MODULE.search(error)
    if missing:
        fields["no_module"] = missing.group(1)
    return fields


def fixed_size_error(cls, module, params: list[dict], sets: dict, layouts: tuple[str, ...],
                     channels: tuple[int, ...]) -> yf_probe.ProbeError | None:
    """When a class that runs at none of the probed sizes runs at one of a few small ones (its arguments' values
    first): the ProbeError saying so, naming the argument equal to that side. None when none of them runs either."""
    values = {**{p["name"]: p.get("value") for p in params}, **sets}
    numbers = {name: v for name, v in values.items() if isinstance(v, int) and not isinstance(v, bool)}
    sizes = dict.fromkeys([v for v in numbers.values() if 2 <= v <= MAX_FIXED_SIZE] + list(TYPICAL_SIZES))
    ran = [(size, layout) for size in sizes for layout in layouts if _runs(module, layout, channels, size)]
    if not ran or _runs(module, ran[0][1], channels, 2 * ran[0][0]):
        return None  # none runs, or twice the side does too: a size multiple the probed sides miss, not one size
    size, layout = ran[0]
    named = next((f", where H == W == {name}" for name, v in numbers.items() if v == size), "")
    others = sorted({s for s, _ in ran} - {size})
    also = f" (and {', '.join(map(str, others))})" if others else ""
    return yf_probe.ProbeError(
        f"{cls.__name__} runs only at one map size, {size}x{size}{also} in {layout}{named}: a detector's maps "
        "change size with the image, so adopt refuses it")


def _runs(module, layout: str, channels: tuple[int, ...], size: int) -> bool:
    for c in channels:
        try:
            yf_probe.run(module, layout, c, size)
            return True
        except Exception:
            continue
    return False


def import_failure_fields(exc: BaseException) -> dict:
    """``extension``: a submodule the source's own package imports that has no Python file there (a compiled
    extension that is not built), with the package's folder in the source (``package``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found = _unbuilt(exc) if isinstance(exc, ImportError) else None
        if found:
            return {"extension": found}
        exc = exc.__cause__ or exc.__context__
    return {}


def _package_folders(package: str, path: str | None) -> list[str]:
    """Where ``package``'s modules live; a package whose __init__ failed is gone from sys.modules, so its file on the
    error (``path``) or its spec (which imports its parents only, already imported) says it."""
    if path and Path(path).name == "__init__.py":
        return [str(Path(path).parent)]
    found = getattr(sys.modules.get(package), "__path__", None)
    if found is None:
        try:
            found = getattr(importlib.util.find_spec(package), "submodule_search_locations", None)
        except (ImportError, ValueError):
            return []
    return list(found or [])


def _unbuilt(exc: ImportError) -> dict | None:
    """{names, package} when ``exc`` is ``from PKG import ext`` (or ``import PKG.ext``) with no ``ext`` in PKG."""
    said = CANNOT_IMPORT.search(str(exc))
    package, name = (said.group(2), said.group(1)) if said else (exc.name or "").rpartition(".")[::2]
    if not package or not name:
        return None
    folders = _package_folders(package, exc.path)
    if not folders:
        return None
    if any((Path(f) / name).is_dir() or (Path(f) / f"{name}.py").is_file() for f in folders):
        return None  # a Python module that failed for another reason
    parts = package.split(".")
    shown = parts[1:] if parts[0].startswith(PRIVATE_PREFIX) else parts
    return {"names": [".".join([*shown, name])], "package": "/".join(shown)}
