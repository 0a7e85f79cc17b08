"""parse_model bookkeeping for multi-output backbones: index slots, one ``ch`` entry per output, built once.

A backbone-role module (an ``nn.Module`` exposing ``width_list`` and returning one feature map per entry) at
YAML row p occupies index slots p .. p+K-1; every later row is numbered K-1 slots further on, so ``from``
indices, the save list, ``m_.i``, the printed table and ``if i == 0: ch = []`` all use slot numbers. Its
parse_model branch (``backbone_registration``, rendered from ``templates/parse_model/backbone.py.j2``) builds
the instance, sets ``c2 = width_list`` and flags it with ``yamlforge_slots = K``; the edits below and the
forward-loop edit in :mod:`yamlforge.patch.codemods.predict` act on that flag only, so every other layer (YOLOv9's
list-returning CBLinear included) is handled exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from ...resources import render
from .base import StatementTransformer, UnexpectedShape, edit_code, parsed_statement
from .predict import is_slots_flag_test, store_outputs_in_slots
from .registration import Registration, is_parse_model, is_row_loop

BRANCH_TEMPLATE = "parse_model/backbone.py.j2"


def _is_offset_init(node: cst.CSTNode) -> bool:
    """``slot_offset = 0``"""
    match node:
        case cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name("slot_offset"))], cst.Integer("0"))]):
            return True
    return False


def _is_shift_row(node: cst.CSTNode) -> bool:
    """``i += slot_offset``"""
    match node:
        case cst.SimpleStatementLine([cst.AugAssign(cst.Name("i"), cst.AddAssign(), cst.Name("slot_offset"))]):
            return True
    return False


def _is_reset_built(node: cst.CSTNode) -> bool:
    """``m_ = None``"""
    match node:
        case cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name("m_"))], cst.Name("None"))]):
            return True
    return False


def _is_construction(node: cst.CSTNode) -> bool:
    """``m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)`` (``torch.nn.Sequential`` on 8.3+)"""
    match node:
        case cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(cst.Name("m_"))], cst.IfExp())]):
            return True
    return False


def _is_skip_if_built(node: cst.CSTNode) -> bool:
    """``if m_ is None:``"""
    match node:
        case cst.If(test=cst.Comparison(cst.Name("m_"), [cst.ComparisonTarget(cst.Is(), cst.Name("None"))])):
            return True
    return False


def _is_append_channels(node: cst.CSTNode) -> bool:
    """``ch.append(c2)``"""
    match node:
        case cst.SimpleStatementLine([cst.Expr(cst.Call(
            func=cst.Attribute(cst.Name("ch"), cst.Name("append")), args=[cst.Arg(cst.Name("c2"))]
        ))]):
            return True
    return False


def _is_extend_channels(node: cst.CSTNode) -> bool:
    """``if getattr(m_, "yamlforge_slots", 0):``"""
    return isinstance(node, cst.If) and is_slots_flag_test(node.test, "m_")


_OFFSET_INIT_CODE = (
    "slot_offset = 0  # yamlforge: index slots taken so far beyond one per row (multi-output backbones)\n"
)
_SHIFT_ROW_CODE = "i += slot_offset  # yamlforge: rows are numbered by index slot; a K-output backbone takes K\n"
_RESET_BUILT_CODE = "m_ = None  # yamlforge: a backbone branch builds its module early, to read its output widths\n"
_SKIP_IF_BUILT_CODE = "if m_ is None:  # yamlforge: not already built by a backbone branch\n    pass\n"
_EXTEND_CHANNELS_CODE = """\
if getattr(m_, "yamlforge_slots", 0):  # yamlforge: one ch entry per backbone output; later rows move on
    ch.extend(c2)
    slot_offset += len(c2) - 1
else:
    pass
"""


def _wrap(template: str, statement: cst.BaseStatement) -> cst.If:
    """``template`` (an ``if`` whose first ``pass`` is a placeholder) holding ``statement``; blank lines stay above."""
    wrapper = parsed_statement(template)
    inner = statement.with_changes(leading_lines=())
    if wrapper.orelse is not None:
        wrapper = wrapper.with_changes(
            orelse=wrapper.orelse.with_changes(body=wrapper.orelse.body.with_changes(body=[inner]))
        )
    else:
        wrapper = wrapper.with_changes(body=wrapper.body.with_changes(body=[inner]))
    return wrapper.with_changes(leading_lines=statement.leading_lines)


def _has(statements, shape: Callable[[cst.CSTNode], bool]) -> bool:
    return any(shape(s) for s in statements)


class _RowLoopEdit(StatementTransformer):
    """Finds ``parse_model``'s row loop and hands its statements to :meth:`edit_loop`; fails on any other shape."""

    def __init__(self):
        super().__init__()
        self.found = False

    @classmethod
    def apply(cls, module: cst.Module) -> cst.Module:
        """This edit on ``module`` (raises :class:`UnexpectedShape` when it has no parse_model of the known shape)."""
        edit = cls()
        updated = module.visit(edit)
        if not edit.found:
            raise UnexpectedShape(module, "no parse_model function found: not a model file yamlforge knows")
        return updated

    def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef) -> cst.FunctionDef:
        if not is_parse_model(original_node):
            return updated_node
        self.found = True
        statements = list(updated_node.body.body)
        for index, statement in enumerate(statements):
            if is_row_loop(statement):
                loop_body = self.edit_loop(list(statement.body.body), original_node.body.body[index])
                statements[index] = statement.with_changes(body=statement.body.with_changes(body=loop_body))
                statements = self.edit_function(statements, index)
                return updated_node.with_changes(body=updated_node.body.with_changes(body=statements))
        raise UnexpectedShape(
            original_node, "parse_model: expected the row loop 'for i, (f, n, m, args) in enumerate(...)'"
        )

    def edit_loop(self, body: list[cst.BaseStatement], loop: cst.For) -> list[cst.BaseStatement]:
        """The new statements of the row loop ``loop`` (of the module visited: errors point at it)."""
        return body

    def edit_function(self, statements: list[cst.BaseStatement], loop_index: int) -> list[cst.BaseStatement]:
        return statements


class NumberRowsBySlot(_RowLoopEdit):
    """Adds ``slot_offset = 0`` before parse_model's row loop and ``i += slot_offset`` as the loop's first line.

    Everything the loop derives from ``i`` (``m_.i``, the save list ``x % i``, the printed table,
    ``if i == 0: ch = []``) then follows index slots; :class:`ExtendChannelsPerOutput` raises the offset after a
    backbone row. Without a backbone the offset stays 0, so nothing changes. Twice is a no-op: each line is
    inserted only when the function / loop does not already hold it.
    """

    def edit_function(self, statements, loop_index):
        if not _has(statements[:loop_index], _is_offset_init):
            statements.insert(loop_index, parsed_statement(_OFFSET_INIT_CODE))
        return statements

    def edit_loop(self, body, loop):
        if not _has(body, _is_shift_row):
            body.insert(0, parsed_statement(_SHIFT_ROW_CODE))
        return body


class SkipBuiltModules(_RowLoopEdit):
    """Puts parse_model's construction line ``m_ = ... m(*args)`` under ``if m_ is None:`` and resets ``m_`` per row.

    A backbone branch must build its module to learn its output widths; this keeps the common construction line
    from building it a second time (which would waste time, draw from the RNG twice and change the weights).
    ``m_ = None`` goes at the top of the loop (after the slot shift, if present). Twice is a no-op: the wrapped
    construction line is no longer a direct statement of the loop, and the reset is only added when missing.
    """

    def edit_loop(self, body, loop):
        if not _has(body, _is_skip_if_built):
            for index, statement in enumerate(body):
                if _is_construction(statement):
                    body[index] = _wrap(_SKIP_IF_BUILT_CODE, statement)
                    break
            else:
                raise UnexpectedShape(
                    loop,
                    "parse_model: expected the construction line 'm_ = nn.Sequential(...) if n > 1 else m(*args)' "
                    "in the row loop",
                )
        if not _has(body, _is_reset_built):
            body.insert(1 if body and _is_shift_row(body[0]) else 0, parsed_statement(_RESET_BUILT_CODE))
        return body


class ExtendChannelsPerOutput(_RowLoopEdit):
    """Replaces ``ch.append(c2)`` by: flagged backbone -> ``ch.extend(c2)`` and ``slot_offset += len(c2) - 1``.

    ``c2`` of a backbone row is its ``width_list``, one width per output slot; the ``else`` keeps the original
    ``ch.append(c2)`` for every other layer (including YOLOv9's CBLinear, whose ``c2`` is a list taking one slot).
    Needs :class:`NumberRowsBySlot` for ``slot_offset``. Twice is a no-op: ``ch.append(c2)`` then sits in the
    ``else`` of the flag test, which is recognised as done.
    """

    def edit_loop(self, body, loop):
        if _has(body, _is_extend_channels):
            return body
        for index, statement in enumerate(body):
            if _is_append_channels(statement):
                body[index] = _wrap(_EXTEND_CHANNELS_CODE, statement)
                return body
        raise UnexpectedShape(loop, "parse_model: expected 'ch.append(c2)' at the end of the row loop")


# parse_model's slot bookkeeping, then the forward loops that read it
MULTI_OUTPUT_EDITS = (
    SkipBuiltModules.apply, NumberRowsBySlot.apply, ExtendChannelsPerOutput.apply, store_outputs_in_slots,
)


def add_multi_output_support(code: str, *, filename: str) -> str:
    """``tasks.py`` / ``yolo.py`` with parse_model's slot bookkeeping and slot-aware forward loops (idempotent)."""
    return edit_code(code, MULTI_OUTPUT_EDITS, filename=filename)


def backbone_registration(name: str) -> Registration:
    """The parse_model branch for backbone class ``name``: build it, ``c2 = width_list``, flag its slot count.

    The class is called as ``name(c1, *yaml_args)``: input channels first, like the target's own layers.
    """
    return Registration(name, "custom", body=render(BRANCH_TEMPLATE, name=name))
