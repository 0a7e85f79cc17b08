"""Makes a package's absolute imports of its own modules relative, so it can live under a target's package."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libcst as cst
from libcst.helpers import get_full_name_for_node
from libcst.metadata import MetadataWrapper, PositionProvider

from ...errors import YamlforgeError
from .base import parse_code


def relative_imports(code: str, locate: Callable[[str], list[str] | None], package: list[str], *,
                     filename: str) -> str:
    """``code`` (a file in folder ``package`` of the source) with :class:`RelativizeOwnImports` applied; ``locate``
    says which folder parts of the source an absolute module name means (None: foreign code)."""
    wrapper = MetadataWrapper(parse_code(code, filename))
    return wrapper.visit(RelativizeOwnImports(locate, package, filename)).code


class RelativizeOwnImports(cst.CSTTransformer):
    """Turns absolute imports of the package's own modules into relative ones, so the package works anywhere.

    Where: every ``from own.mod import X`` (module level, in functions, in ``try``) becomes ``from .mod import X``
    with as many dots as the importing file's depth needs; ``import own.mod as m`` becomes ``from . import mod as
    m``; ``import mod`` of a top-level module becomes ``from . import mod`` (it binds the same name). A plain
    ``import own.mod`` (used as ``own.mod.X``) or an import of the package itself is refused, naming the line.
    Twice is a no-op: relative imports and imports of foreign modules are never touched.
    """

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, locate: Callable[[str], list[str] | None], package: list[str], filename: str):
        super().__init__()
        self.locate = locate  # not "resolve": MetadataDependent has one
        self.package = package
        self.filename = filename

    def leave_ImportFrom(self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom) -> cst.ImportFrom:
        if updated_node.relative or updated_node.module is None:
            return updated_node
        target = self.locate(get_full_name_for_node(updated_node.module))
        if target is None:
            return updated_node
        level, module = self._relative(target)
        return updated_node.with_changes(relative=[cst.Dot()] * level, module=module)

    def leave_Import(self, original_node: cst.Import, updated_node: cst.Import):
        if all(self.locate(get_full_name_for_node(a.name)) is None for a in updated_node.names):
            return updated_node
        return cst.FlattenSentinel(list(self._split(original_node, updated_node)))

    def _split(self, original: cst.Import, node: cst.Import) -> Iterator[cst.BaseSmallStatement]:
        """One statement per alias: foreign ones stay ``import x``, own ones become ``from <dots> import y``."""
        for alias in node.names:
            dotted = get_full_name_for_node(alias.name)
            target = self.locate(dotted)
            if target is None:
                yield cst.Import(names=[alias.with_changes(comma=cst.MaybeSentinel.DEFAULT)])
                continue
            if not target or (alias.asname is None and len(dotted.split(".")) > 1):
                line = self.get_metadata(PositionProvider, original).start.line
                raise YamlforgeError(f"'import {dotted}' cannot become a relative import", where=f"{self.filename}:"
                                     f"{line}", hint=f"write 'from {dotted.rpartition('.')[0] or dotted} import "
                                     f"{dotted.rpartition('.')[2]}' and use the module by that name")
            level, module = self._relative(target[:-1])
            yield cst.ImportFrom(module=module, relative=[cst.Dot()] * level,
                                 names=[cst.ImportAlias(cst.Name(target[-1]), asname=alias.asname)])

    def _relative(self, target: list[str]) -> tuple[int, cst.Attribute | cst.Name | None]:
        """Dots and module for ``target`` (folder parts in the source) seen from a file in ``self.package``."""
        common = 0
        while common < min(len(target), len(self.package)) and target[common] == self.package[common]:
            common += 1
        rest = target[common:]
        return len(self.package) - common + 1, cst.parse_expression(".".join(rest)) if rest else None
