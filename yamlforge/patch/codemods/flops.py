"""FLOPs edit: when the stride-sized FLOPs estimate fails or gives 0, profile once at the full image size.

The estimate profiles a stride x stride (32 x 32) image and scales it up; RT-DETR's decoder (it selects 300
queries from the anchors) and multi-output backbones fail on so small an image, so Ultralytics 8.0 prints no
GFLOPs for stock rtdetr-l at all. Ultralytics keeps the estimate in ``get_flops`` (utils/torch_utils.py, every
version): it gets a decorator. YOLOv9 computes it inline in ``model_info``: a fallback statement follows the try.
Both use the helper ``gflops_at_full_size`` inserted once, right before the function they edit.
"""

from __future__ import annotations

import libcst as cst

from .base import ModuleLevelTransformer, UnexpectedShape, edit_code, find_all, parsed_statement

HELPER = "gflops_at_full_size"
DECORATOR = "fall_back_to_full_size"

_HELPER_CODE = '''\
def gflops_at_full_size(model, imgsz=640):
    """GFLOPs of one forward pass at the full image size (yamlforge: when the stride-sized estimate fails or is 0)."""
    try:
        from copy import deepcopy

        import thop

        p = next(model.parameters())
        size = list(imgsz) if isinstance(imgsz, (list, tuple)) else [imgsz, imgsz]
        im = torch.empty((1, p.shape[1], *size), device=p.device, dtype=p.dtype)  # input image in BCHW format
        return thop.profile(deepcopy(model).eval(), inputs=[im], verbose=False)[0] / 1e9 * 2
    except Exception:
        return 0.0
'''

_DECORATOR_CODE = '''\
def fall_back_to_full_size(get_flops):
    """yamlforge: ``get_flops`` profiles a stride-sized image, too small for RT-DETR and multi-output backbones."""
    import functools

    @functools.wraps(get_flops)
    def get_flops_or_full_size(model, imgsz=640):
        return get_flops(model, imgsz) or gflops_at_full_size(model, imgsz)

    return get_flops_or_full_size
'''

# ``{size}`` passes model_info's image-size parameter, ``imgsz`` (YOLOv5, YOLOv9) or ``img_size`` (YOLOv7), if any
IMAGE_SIZE_PARAMETERS = ("imgsz", "img_size")
_MODEL_INFO_FALLBACK_CODE = """\
if not fs or not flops:  # yamlforge: the stride-sized profile failed or gave 0; profile at the full image size
    flops = gflops_at_full_size(model{size})
    fs = f", {{flops:.1f}} GFLOPs" if flops else ""
"""


def _function_index(statements, name: str) -> int | None:
    """The position of ``def <name>(...):`` among ``statements``."""
    return next((i for i, s in enumerate(statements) if isinstance(s, cst.FunctionDef) and s.name.value == name), None)


def _is_profile_call(node: cst.CSTNode) -> bool:
    """``thop.profile(...)``, or ``profile(...)`` after ``from thop import profile`` (YOLOv7)"""
    match node:
        case cst.Call(func=cst.Attribute(cst.Name("thop"), cst.Name("profile")) | cst.Name("profile")):
            return True
    return False


def _is_flops_try(node: cst.CSTNode) -> bool:
    """YOLOv9 model_info: ``try:  # FLOPs`` ... ``thop.profile(...)`` ... ``except Exception: fs = ''``"""
    return isinstance(node, cst.Try) and bool(find_all(node.body, _is_profile_call))


def _is_model_info_fallback(node: cst.CSTNode) -> bool:
    """``if not fs or ...:``"""
    match node:
        case cst.If(test=cst.BooleanOperation(cst.UnaryOperation(cst.Not(), cst.Name("fs")), cst.Or())):
            return True
    return False


def _is_decorated(function: cst.FunctionDef, decorator: str) -> bool:
    """``@<decorator>`` is among the decorators of ``function``."""
    return any(isinstance(d.decorator, cst.Name) and d.decorator.value == decorator for d in function.decorators)


def _insert_helpers(statements: list, before: int, names: tuple[str, ...]) -> list:
    """Insert the helper functions ``names`` (those not yet defined) right before ``statements[before]``."""
    code = {HELPER: _HELPER_CODE, DECORATOR: _DECORATOR_CODE}
    missing = [name for name in names if _function_index(statements, name) is None]
    # each helper is spaced like the anchor (its blank lines, not its comments)
    spacing = [line for line in statements[before].leading_lines if line.comment is None]
    statements[before:before] = [parsed_statement(code[name]).with_changes(leading_lines=spacing) for name in missing]
    return statements


class _FunctionEdit(ModuleLevelTransformer):
    """Edits the statements around the module-level ``def <function_name>`` (:meth:`edit`); ``found`` says whether
    the file has that function at all."""

    function_name = ""

    def __init__(self):
        super().__init__()
        self.found = False

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        statements = list(updated_node.body)
        index = _function_index(statements, self.function_name)
        if index is None:
            return updated_node
        self.found = True
        return updated_node.with_changes(body=self.edit(statements, index, original_node.body[index]))

    def edit(self, statements: list, index: int, original: cst.FunctionDef) -> list:
        """The module's statements with ``statements[index]`` (``original`` in the file as given) edited."""
        raise NotImplementedError


class DecorateGetFlops(_FunctionEdit):
    """Ultralytics: ``@fall_back_to_full_size`` on module-level ``get_flops``, helpers defined right before it.

    The decorator returns ``get_flops(...)`` when it is non-zero and ``gflops_at_full_size(...)`` otherwise, so
    every shape of ``get_flops`` (8.0's one try, 8.1-8.3's two, 8.4's stride-aware thop) is kept as it is and
    models it could already measure report the same number. Twice is a no-op: helpers and decorator are only
    added when missing.
    """

    function_name = "get_flops"

    def edit(self, statements: list, index: int, original: cst.FunctionDef) -> list:
        function = statements[index]
        if not _is_decorated(function, DECORATOR):
            statements[index] = function.with_changes(
                decorators=[cst.Decorator(cst.Name(DECORATOR)), *function.decorators]
            )
        return _insert_helpers(statements, index, (HELPER, DECORATOR))


def _image_size_argument(function: cst.FunctionDef) -> str:
    """``, <name>`` of ``model_info``'s image-size parameter (one of :data:`IMAGE_SIZE_PARAMETERS`); ``""`` without
    one (the helper's 640 then)."""
    names = [p.name.value for p in function.params.params]
    return next((f", {name}" for name in names if name in IMAGE_SIZE_PARAMETERS), "")


class FallBackInModelInfo(_FunctionEdit):
    """YOLOv5/v7/v9: after ``model_info``'s FLOPs ``try`` add ``if not fs or not flops:`` -> profile at full size.

    ``fs`` is ``''`` when the stride-sized profile raised, and ``flops`` is bound whenever ``fs`` is not empty,
    so the test is safe; ``gflops_at_full_size`` is inserted before ``model_info``. Twice is a no-op: the fallback
    is only added when the statement after the try is not already that ``if``.
    """

    function_name = "model_info"

    def edit(self, statements: list, index: int, original: cst.FunctionDef) -> list:
        function = statements[index]
        body = list(function.body.body)
        position = next((i for i, statement in enumerate(body) if _is_flops_try(statement)), None)
        if position is None:
            raise UnexpectedShape(original, "model_info: expected a 'try:' computing FLOPs with thop.profile")
        if position + 1 >= len(body) or not _is_model_info_fallback(body[position + 1]):
            size = _image_size_argument(original)
            body.insert(position + 1, parsed_statement(_MODEL_INFO_FALLBACK_CODE.format(size=size)))
            statements[index] = function.with_changes(body=function.body.with_changes(body=body))
        return _insert_helpers(statements, index, (HELPER,))


def full_size_flops_fallback(module: cst.Module) -> cst.Module:
    """The edit :class:`DecorateGetFlops` on Ultralytics' ``torch_utils.py``, else :class:`FallBackInModelInfo`."""
    decorate = DecorateGetFlops()
    updated = module.visit(decorate)
    if decorate.found:
        return updated
    fallback = FallBackInModelInfo()
    updated = module.visit(fallback)
    if not fallback.found:
        raise UnexpectedShape(
            module,
            "no get_flops (Ultralytics) or model_info (YOLOv9) function found: not a torch_utils.py yamlforge knows",
        )
    return updated


def fix_get_flops(code: str, *, filename: str) -> str:
    """``torch_utils.py`` whose FLOPs report falls back to a full-size profile (Ultralytics or YOLOv9; idempotent)."""
    return edit_code(code, [full_size_flops_fallback], filename=filename)
