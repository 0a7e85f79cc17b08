"""Adds ``from <module> import <name>  # yamlforge`` lines to a target's tasks.py / yolo.py (libcst)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import libcst as cst
from libcst.helpers import get_full_name_for_node

from .base import Edit, ModuleLevelTransformer, edit_code

MARKER = "# yamlforge"  # on every import line we add: reviewers see what is ours, revert can find it


def _is_import_line(statement: cst.CSTNode) -> bool:
    """A line holding ``import ...`` or ``from ... import ...`` (among other small statements, maybe)."""
    match statement:
        case cst.SimpleStatementLine(body=smalls):
            return any(isinstance(small, (cst.Import, cst.ImportFrom)) for small in smalls)
    return False


def _is_docstring(statement: cst.CSTNode) -> bool:
    """A docstring: a line holding a lone string."""
    match statement:
        case cst.SimpleStatementLine([cst.Expr(cst.SimpleString() | cst.ConcatenatedString())]):
            return True
    return False


def _bound_by(statement: cst.CSTNode) -> Iterable[str]:
    """Names one module-level statement binds (imports in any form, classes, defs, assignments)."""
    if isinstance(statement, (cst.ClassDef, cst.FunctionDef)):
        yield statement.name.value
        return
    if isinstance(statement, cst.SimpleStatementLine):
        for small in statement.body:
            if isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(small.names, cst.ImportStar):
                for alias in small.names:
                    if alias.asname is not None:
                        yield from _target_names(alias.asname.name)
                    elif isinstance(small, cst.Import):  # ``import a.b`` binds ``a``
                        yield get_full_name_for_node(alias.name).split(".")[0]
                    else:
                        yield alias.name.value
            elif isinstance(small, cst.Assign):
                for target in small.targets:
                    yield from _target_names(target.target)
            elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                yield from _target_names(small.target)
        return
    # ``try: import thop`` / ``if TYPE_CHECKING: ...`` at module level bind module-level names too
    for block in _blocks(statement):
        for inner in block.body:
            yield from _bound_by(inner)


def _target_names(target: cst.BaseExpression) -> Iterable[str]:
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            yield from _target_names(element.value)


def _blocks(statement: cst.CSTNode) -> Iterable[cst.BaseSuite]:
    """The suites of a module-level compound statement other than class/def (if/elif/else, try/except, with, ...)."""
    for name in ("body", "orelse", "finalbody"):
        child = getattr(statement, name, None)
        if isinstance(child, (cst.If, cst.Else, cst.Finally)):
            yield from _blocks(child) if isinstance(child, cst.If) else [child.body]
        elif isinstance(child, cst.BaseSuite):
            yield child
    for handler in getattr(statement, "handlers", ()):
        yield handler.body


def module_level_names(module: cst.Module) -> frozenset[str]:
    """Every name bound at module level (star imports excepted: what they bind is not in this file)."""
    return frozenset(name for statement in module.body for name in _bound_by(statement))


class AddImports(ModuleLevelTransformer):
    """Adds one ``from <module> import <A>, <B>  # yamlforge`` statement per module, after the last top-level import.

    Names keep the order given and are grouped by module; the lines go directly below the file's last top-level
    import (or below the docstring when there is none), so the diff is one contiguous block of whole lines that
    revert removes exactly. A name already bound at module level, by an import in any form (``from x import A``,
    ``from y import B as A``, ``import A``), a class, a def or an assignment, is skipped: applying twice, or to
    a checkout where the user imported the class by hand, adds nothing.
    """

    def __init__(self, imports: Sequence[tuple[str, str]]):
        super().__init__()
        for module, name in imports:
            if not all(part.isidentifier() for part in module.split(".")) or not name.isidentifier():
                raise ValueError(f"not an importable (module, name) pair: {(module, name)!r}")
        self.imports = list(imports)

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        bound = set(module_level_names(updated_node))
        wanted: dict[str, list[str]] = {}
        for module, name in self.imports:
            if name not in bound:
                bound.add(name)
                wanted.setdefault(module, []).append(name)
        if not wanted:
            return updated_node
        body = list(updated_node.body)
        position = _insert_position(body)
        new = [_import_line(module, names) for module, names in wanted.items()]
        return updated_node.with_changes(body=[*body[:position], *new, *body[position:]])


def _insert_position(body: Sequence[cst.BaseStatement]) -> int:
    last_import = max((i for i, statement in enumerate(body) if _is_import_line(statement)), default=None)
    if last_import is not None:
        return last_import + 1
    return 1 if body and _is_docstring(body[0]) else 0


def _import_line(module: str, names: Sequence[str]) -> cst.SimpleStatementLine:
    statement = cst.ImportFrom(module=cst.parse_expression(module), names=[cst.ImportAlias(cst.Name(n)) for n in names])
    return cst.SimpleStatementLine(
        body=[statement],
        trailing_whitespace=cst.TrailingWhitespace(whitespace=cst.SimpleWhitespace("  "), comment=cst.Comment(MARKER)),
    )


def import_edits(imports: Sequence[tuple[str, str]]) -> list[Edit]:
    """The edit :class:`AddImports` for ``imports`` (``(module, name)`` pairs)."""
    transformer = AddImports(imports)  # keeps no state between visits: one serves every run
    return [lambda module: module.visit(transformer)]


def add_imports(code: str, imports: Sequence[tuple[str, str]], *, filename: str) -> str:
    """``code`` with ``from module import name`` for every pair not already bound at module level (idempotent)."""
    return edit_code(code, import_edits(imports), filename=filename)
