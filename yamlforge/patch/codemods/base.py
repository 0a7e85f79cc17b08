"""What every codemod shares: one parse, statement-level visits, and shape errors naming the user's ``file:line``.

An edit is a function ``module -> module`` built around one small transformer. It raises
:class:`UnexpectedShape` at the node lacking the shape it needs; :func:`apply_edits` runs a list of edits on one
parse and turns that into a :class:`~yamlforge.errors.YamlforgeError` naming the line in the file *as given*.

Edits find their place with shapes: small predicates ``is_<shape>(node)``, each one ``match`` statement on libcst's
node classes with the code it matches in its docstring, version differences as alternatives (``cst.Tuple() |
cst.Set()``). They read like libcst.matchers, whose generated module alone takes as long to import as libcst does
(half of apply's time over its floor): :func:`find_all` is its ``findall``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from functools import cache

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from ...errors import YamlforgeError

Edit = Callable[[cst.Module], cst.Module]


class UnexpectedShape(Exception):
    """Raised by an edit: ``node`` (of the module it was given) lacks the shape the edit needs."""

    def __init__(self, node: cst.CSTNode, message: str):
        super().__init__(message)
        self.node = node
        self.message = message


def parse_code(code: str, filename: str) -> cst.Module:
    """libcst parse whose syntax errors are user errors naming ``filename:line``.

    The line and message are Python's own (libcst's parser can point one line past the mistake).
    """
    try:
        return cst.parse_module(code)
    except cst.ParserSyntaxError as exc:
        line, message = exc.raw_line, exc.message
    try:
        ast.parse(code)
    except SyntaxError as exc:
        line, message = exc.lineno or line, exc.msg
    raise YamlforgeError(
        f"'{filename}' is not valid Python ({message}); nothing was changed",
        where=f"{filename}:{line}",
        hint="fix or restore the file, then run again",
    )


def edit_code(code: str, edits: Sequence[Edit], *, filename: str) -> str:
    """``code`` with ``edits`` applied in order, on one parse (see :func:`apply_edits`)."""
    return apply_edits(parse_code(code, filename), edits, filename=filename).code


def apply_edits(module: cst.Module, edits: Sequence[Edit], *, filename: str) -> cst.Module:
    """``module`` with ``edits`` applied in order; a shape error names the line of ``module`` as given.

    An edit only looks for shapes the file as given has (earlier edits insert lines, they never remove what a
    later edit needs), so an edit failing after others ran fails the same way on ``module``: it is run again
    there, for the user's line numbers. Positions cost a pass over the module, so only errors compute them.
    """
    edited = module
    for edit in edits:
        try:
            edited = edit(edited)
        except UnexpectedShape as exc:
            raise _user_error(module, edited, edit, exc, filename) from None
    return edited


def _user_error(
    original: cst.Module, edited: cst.Module, edit: Edit, exc: UnexpectedShape, filename: str
) -> YamlforgeError:
    visited = edited
    if edited is not original:
        try:
            edit(original)
        except UnexpectedShape as first:
            exc, visited = first, original
    return YamlforgeError(exc.message, where=f"{filename}:{line_of(visited, exc.node)}")


def line_of(module: cst.Module, node: cst.CSTNode) -> int:
    """The first line of ``node``, a node of ``module`` (line 1 for the module itself)."""
    if node is module:
        return 1
    return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)[node].start.line


@cache
def parsed_statement(code: str) -> cst.BaseStatement:
    """``code`` (one statement an edit inserts) parsed once per process; libcst nodes are immutable, so shared."""
    return cst.parse_statement(code)


class _FindAll(cst.CSTVisitor):
    """Collects the nodes ``wanted`` accepts, visiting everything (libcst.matchers' ``findall``, for a predicate)."""

    def __init__(self, wanted: Callable[[cst.CSTNode], bool]):
        super().__init__()
        self.wanted = wanted
        self.found: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.wanted(node):
            self.found.append(node)
        return True


def find_all(tree: cst.CSTNode, wanted: Callable[[cst.CSTNode], bool]) -> list[cst.CSTNode]:
    """Every node of ``tree`` (itself included) that ``wanted`` accepts, in source order."""
    finder = _FindAll(wanted)
    tree.visit(finder)
    return finder.found


# Every statement that can hold a def or class sits in one of these: a statement-level edit enters only them
STATEMENT_CONTAINERS = (
    cst.Module,
    cst.BaseSuite,
    cst.BaseCompoundStatement,
    cst.Else,
    cst.ExceptHandler,
    cst.ExceptStarHandler,
    cst.Finally,
    cst.MatchCase,
)


class StatementTransformer(cst.CSTTransformer):
    """Visits statements only, never the expressions and simple statements inside them (most of a model file).

    Edits acting in ``leave_FunctionDef`` / ``leave_ClassDef`` on whole statement lists reach every def and
    class at any depth while visiting a fraction of the nodes a full pass would.
    """

    def on_visit(self, node: cst.CSTNode) -> bool:
        return isinstance(node, STATEMENT_CONTAINERS) and super().on_visit(node)


class ModuleLevelTransformer(cst.CSTTransformer):
    """Edits module-level statements in ``leave_Module``; nothing below them is visited (most of the file)."""

    def on_visit(self, node: cst.CSTNode) -> bool:
        return isinstance(node, cst.Module) and super().on_visit(node)
