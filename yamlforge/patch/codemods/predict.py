"""Forward-loop edit: a multi-output backbone layer stores each of its outputs in its own slot of ``y``."""

from __future__ import annotations

import libcst as cst

from ...targets import KINDS
from .base import StatementTransformer, UnexpectedShape, parsed_statement

# The methods that run ``self.model`` layer by layer, as the target descriptions name them (Ultralytics
# ``_predict_once`` and the ``predict`` overrides of RT-DETR / World / YOLOE models, YOLOv5/v9 ``_forward_once``,
# YOLOv7 ``forward_once``).
FORWARD_METHODS = frozenset(name for kind in KINDS for name in kind.forward_methods)
# Every model goes through its kind's first one; RT-DETR's predict() is the other loop a backbone must work in.
BASE_FORWARD_METHODS = frozenset(kind.forward_methods[0] for kind in KINDS)
REQUIRED_CLASS_METHODS = frozenset({("RTDETRDetectionModel", "predict")})

SLOTS_FLAG = "yamlforge_slots"  # set on a backbone instance by its parse_model branch: its number of outputs


def _is_layer_loop(node: cst.CSTNode) -> bool:
    """``for m in self.model:`` or ``for m in self.model[:-1]:`` (RT-DETR runs the head separately)."""
    match node:
        case cst.For(
            target=cst.Name("m"),
            iter=cst.Attribute(cst.Name("self"), cst.Name("model"))
            | cst.Subscript(cst.Attribute(cst.Name("self"), cst.Name("model"))),
        ):
            return True
    return False


def _is_save_output(node: cst.CSTNode) -> bool:
    """``y.append(x if m.i in self.save else None)``"""
    match node:
        case cst.SimpleStatementLine([cst.Expr(cst.Call(
            func=cst.Attribute(cst.Name("y"), cst.Name("append")), args=[cst.Arg(cst.IfExp())]
        ))]):
            return True
    return False


def is_slots_flag_test(node: cst.CSTNode, module_name: str) -> bool:
    """``getattr(<module_name>, "yamlforge_slots", 0)``, the test of the ``if`` the slot edits insert."""
    match node:
        case cst.Call(func=cst.Name("getattr"),
                      args=[cst.Arg(cst.Name(name)), cst.Arg(cst.SimpleString() as flag), *_]):
            return name == module_name and flag.evaluated_value == SLOTS_FLAG
    return False


def _is_store_in_slots(node: cst.CSTNode) -> bool:
    """``if getattr(m, "yamlforge_slots", 0):``"""
    return isinstance(node, cst.If) and is_slots_flag_test(node.test, "m")


_STORE_IN_SLOTS_CODE = """\
if getattr(m, "yamlforge_slots", 0):  # yamlforge: a multi-output backbone fills one slot of y per output
    y.extend(o if m.i + k in self.save else None for k, o in enumerate(x))
    x = x[-1]  # the next layer's -1 is the backbone's last output
else:
    pass
"""


class StoreBackboneOutputsInSlots(StatementTransformer):
    """Wraps ``y.append(x if m.i in self.save else None)`` in every layer loop of the forward methods.

    Inserted where the loop saves a layer's output: ``if getattr(m, "yamlforge_slots", 0):`` stores output k of a
    backbone in slot ``m.i + k`` (when saved) and passes the last one on as ``x``; the ``else`` is the original
    line, so models without a backbone run exactly as before. YOLOv9's CBLinear also returns a list but has no flag,
    so it still takes one slot. Applying twice is a no-op: the append is then no longer a direct statement of the
    loop body but sits in the ``else`` of the flag test, which is recognised as done.
    """

    def __init__(self):
        super().__init__()
        self.classes: list[str] = []
        self.done: dict[tuple[str | None, str], bool] = {}  # (class, method) -> has a (now) slot-aware loop
        self.methods: dict[tuple[str | None, str], cst.FunctionDef] = {}  # the last def of each, for errors

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(node.name.value)

    def leave_ClassDef(self, original_node: cst.ClassDef, updated_node: cst.ClassDef) -> cst.ClassDef:
        self.classes.pop()
        return updated_node

    def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef) -> cst.FunctionDef:
        name = original_node.name.value
        if name not in FORWARD_METHODS or not isinstance(updated_node.body, cst.IndentedBlock):
            return updated_node
        key = (self.classes[-1] if self.classes else None, name)
        self.methods[key] = original_node
        found = False
        body = []
        for statement in updated_node.body.body:
            if _is_layer_loop(statement):
                statement, patched = self._patch_loop(statement)
                found = found or patched
            body.append(statement)
        self.done[key] = self.done.get(key, False) or found
        return updated_node.with_changes(body=updated_node.body.with_changes(body=body))

    @staticmethod
    def _patch_loop(loop: cst.For) -> tuple[cst.For, bool]:
        statements = list(loop.body.body)
        if any(_is_store_in_slots(s) for s in statements):
            return loop, True
        for index, statement in enumerate(statements):
            if _is_save_output(statement):
                store = parsed_statement(_STORE_IN_SLOTS_CODE)
                statements[index] = store.with_changes(
                    orelse=store.orelse.with_changes(body=store.orelse.body.with_changes(body=[statement]))
                )
                return loop.with_changes(body=loop.body.with_changes(body=statements)), True
        return loop, False

    def check(self, module: cst.Module) -> None:
        """Raise :class:`UnexpectedShape` at the method of ``module`` (the module visited) lacking a loop it needs."""
        if not any(key[1] in BASE_FORWARD_METHODS for key in self.done):
            raise UnexpectedShape(module,
                                  "no _predict_once / _forward_once method found: not a model file yamlforge knows")
        required = [key for key in self.done if key in REQUIRED_CLASS_METHODS or key[1] in BASE_FORWARD_METHODS]
        for key in required:
            if not self.done[key]:
                owner = f"{key[0]}.{key[1]}" if key[0] else key[1]
                raise UnexpectedShape(
                    self.methods[key],
                    f"{owner}: expected a loop 'for m in self.model' saving outputs with "
                    "'y.append(x if m.i in self.save else None)'",
                )


def store_outputs_in_slots(module: cst.Module) -> cst.Module:
    """The edit :class:`StoreBackboneOutputsInSlots` (raises :class:`UnexpectedShape` on an unknown loop shape)."""
    transformer = StoreBackboneOutputsInSlots()
    updated = module.visit(transformer)
    transformer.check(module)
    return updated
