"""Runs inside the target's Python: exports a model YAML to ONNX with the target's own exporter, then compares it.

Like ``verify_runner.py`` (whose facts-driven import, build and JSON protocol this file reuses by importing it as
a sibling), it imports nothing from yamlforge. ``python export_runner.py --mode export --target FACTS --yaml Y
--imgsz N`` builds the model, hands it to the exporter the facts name (the package's model wrapper
``.export(format="onnx")``, or the checkout's ``export.py`` run with ``include=("onnx",)``), runs the ``.onnx``
file with onnxruntime on CPU on the same random image as PyTorch and reports the largest absolute difference of
each of its outputs (boxes, and a segmenter's mask prototypes) to the PyTorch output of its shape. Where the target's
exporter is known to choose a wrong opset (the facts' ``export_opset_fix``), it is given the fix's opset, with a
note. When the exporter fails, each layer is exported alone, with the exporter's opset, on a clean copy of the input
it received in a forward pass, in model order, and the first one that fails is named; when none does, the
whole-model error is reported with the line of the checkout's code it came through.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import io
import math
import os
import re
import sys
import traceback
import warnings
from pathlib import Path

if __package__:  # imported as yamlforge.runners.export_runner (the tests)
    from . import verify_runner as vr
    from . import yf_build, yf_checks, yf_facts, yf_train, yf_wrappers
else:  # a script in the target's Python: its own folder is sys.path[0]
    import verify_runner as vr
    import yf_build
    import yf_checks
    import yf_facts
    import yf_train
    import yf_wrappers

ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxslim")  # what the exporters and the comparison import
ATOL, RTOL = 1e-3, 1e-4  # |onnx - torch| <= ATOL + RTOL * max|torch|: fused Conv+BN rounds differently
UNORDERED_MAX = 20_000  # outputs up to this size are also compared row by row regardless of order (300 queries x 6)


def open_model(args, facts: dict):
    """Import the checkout and build ``args.yaml`` the way ``verify`` does; returns (Report, model or None, cfg)."""
    root = Path(facts["root"]).resolve()
    report = yf_facts.Report(target={"kind": facts["kind"], "version": facts["version"], "root": str(root)},
                       yaml=args.yaml, imgsz=args.imgsz, python=sys.executable, imported=None)
    yf_facts.put_checkout_on_path(facts["path_entry"])
    if not yf_facts.import_torch(report) or not yf_facts.check_import(report, facts, root):
        return report, None, None
    model, cfg_dict = yf_build.build(report, facts, args.yaml, root)
    return report, model, cfg_dict


def missing_packages() -> list[str]:
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


@contextlib.contextmanager
def legacy_onnx_exporter():
    """``torch.onnx.export`` on the TorchScript exporter the targets' exporters were written for (torch >= 2.9 uses
    dynamo by default); yields the list of the ``opset_version`` each call asked for (None: torch's default)."""
    import torch

    original = torch.onnx.export
    signature = inspect.signature(original)
    opsets: list[int | None] = []

    @functools.wraps(original)
    def export(*args, **kwargs):
        if "dynamo" in signature.parameters:
            kwargs.setdefault("dynamo", False)
        with contextlib.suppress(TypeError):  # arguments torch refuses: the call below says so
            opsets.append(signature.bind_partial(*args, **kwargs).arguments.get("opset_version"))
        return original(*args, **kwargs)

    torch.onnx.export = export
    try:
        yield opsets
    finally:
        torch.onnx.export = original


def fixed_opset(facts: dict, named: int | None, supported: int | None) -> int | None:
    """The opset of the target's ``export_opset_fix`` when it applies: a release in its range, under a torch that
    names fewer opsets (``symbolic_opsetN``) than the fix's opset while its exporter supports it; else None."""
    fix = facts["export_opset_fix"]
    if not fix or not facts["version"]:
        return None
    if not yf_facts.release(fix["since"]) <= yf_facts.release(facts["version"]) < yf_facts.release(fix["before"]):
        return None
    return fix["opset"] if named is not None and supported is not None and named < fix["opset"] <= supported else None


def torch_opsets() -> tuple[int | None, int | None]:
    """(the newest opset torch.onnx names a ``symbolic_opsetN`` module for, the newest its TorchScript exporter
    exports); None where this torch does not say."""
    import torch.onnx

    named = max((int(k[14:]) for k in vars(torch.onnx) if re.fullmatch(r"symbolic_opset\d+", k)), default=None)
    try:
        constants = importlib.import_module("torch.onnx._constants")  # torch >= 1.13
    except ImportError:
        return named, None
    return named, getattr(constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(constants, "ONNX_MAX_OPSET", None))


def opset_for_exporter(report, facts: dict) -> int | None:
    """The opset to give the target's exporter (with a note saying why), or None: its own choice."""
    import torch

    named, supported = torch_opsets()
    opset = fixed_opset(facts, named, supported)
    if opset is not None:
        report.note(f"exported with ONNX opset {opset} instead of {facts['kind']} {facts['version']}'s own choice, "
                    f"as torch {torch.__version__} names opsets up to {named} only: "
                    f"{facts['export_opset_fix']['reason']}")
    return opset


def export_with_wrapper(report, facts: dict, cfg: str, cfg_dict: dict, model, workdir: Path, imgsz: int,
                        options: dict) -> Path:
    """The package's model wrapper (``YOLO``, ``RTDETR``) holding ``model``: ``.export(format="onnx", **options)``."""
    wrapper = yf_wrappers.wrapper_class(facts, cfg, cfg_dict)(cfg)
    wrapper.model = model  # the same weights as the PyTorch reference
    model.pt_path = str(workdir / (Path(cfg).stem + ".pt"))  # the exporter writes next to it, not next to the YAML
    return Path(wrapper.export(format="onnx", imgsz=imgsz, device="cpu", batch=1, **options))


def export_with_script(report, facts: dict, cfg: str, cfg_dict: dict, model, workdir: Path, imgsz: int,
                       options: dict) -> Path:
    """The checkout's export script (``export.py``): its ``run(weights=..., include=("onnx",), **options)`` on a
    saved model."""
    import torch

    weights = workdir / (Path(cfg).stem + ".pt")
    torch.save({"model": model}, weights)
    if yf_train.needs_legacy_load(facts):
        os.environ[yf_facts.LEGACY_LOAD_ENV] = "1"
    script = Path(facts["root"]) / facts["export_script"]
    spec = importlib.util.spec_from_file_location(f"{facts['package']}_export_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run_filling_missing_names(report, module, weights=str(weights), imgsz=[imgsz], include=("onnx",), device="cpu",
                              **options)
    return weights.with_suffix(".onnx")


def run_filling_missing_names(report, script, **kwargs):
    """``script.run(**kwargs)``; a class name the script uses but its release never defines (yolov9pip 0.0.4's
    ``isinstance(m, (Detect, V6Detect))``) becomes a class nothing is an instance of, with a note, and it reruns."""
    filled = []
    while True:
        try:
            return script.run(**kwargs)
        except NameError as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            if not exc.name or exc.name in filled or Path(frame.filename) != Path(script.__file__):
                raise
            filled.append(exc.name)
            setattr(script, exc.name, type(exc.name, (), {}))
            report.note(f"{Path(script.__file__).name}:{frame.lineno} uses {exc.name}, which this checkout does "
                        "not define (a bug in its export script); it ran with an empty class of that name")


EXPORTERS = {"wrapper": export_with_wrapper, "script": export_with_script}


def exporter_of(facts: dict) -> str:
    return "script" if facts["export_script"] else "wrapper"


def compare_with_torch(onnx_file: Path, model, imgsz: int) -> dict:
    """Every output of the ONNX file (onnxruntime, CPU) against PyTorch's on one random image; ``outputs`` holds one
    comparison per ONNX output, and the top-level fields are those of the worst one (the first without a match)."""
    import onnxruntime
    import torch

    x = yf_facts.random_images(1, imgsz)
    model.eval()
    with torch.no_grad():
        references = [t.float().numpy() for t in yf_facts.tensors(model(x))]
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    exported = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    outputs = [compare_output(name, array, references) for name, array in zip(names, exported)]
    worst = max(outputs, key=lambda o: math.inf if o["max_abs_diff"] is None else o["max_abs_diff"] / o["tolerance"])
    return {**{key: value for key, value in worst.items() if key != "name"}, "output": worst["name"],
            "outputs": outputs}


def compare_output(name: str, exported, references: list) -> dict:
    """One ONNX output against the first PyTorch output of its shape, which it then takes: the exporters drop what
    PyTorch also returns for training and loss (a detector's raw feature maps, a segmenter's mask coefficients)
    and keep the order of the rest (boxes before mask prototypes)."""
    import numpy as np

    index = next((i for i, r in enumerate(references) if r is not None and r.shape == exported.shape), None)
    result = {"name": name, "onnx_shape": list(exported.shape), "torch_shape": [], "max_abs_diff": None,
              "tolerance": None, "unordered": False}
    if index is None:
        result["unmatched"] = [list(r.shape) for r in references if r is not None]
        return result
    result["torch_shape"] = list(references[index].shape)
    reference, references[index] = references[index], None
    result["max_abs_diff"] = float(np.abs(exported - reference).max())
    result["tolerance"] = ATOL + RTOL * float(np.abs(reference).max())
    if result["max_abs_diff"] > result["tolerance"] and exported.size <= UNORDERED_MAX:
        result["ordered_diff"] = result["max_abs_diff"]
        result["max_abs_diff"], result["unordered"] = unordered_diff(exported, reference), True
    return result


def unordered_diff(a, b) -> float:
    """The largest difference between a row of ``a`` (a vector along the last axis) and its closest row of ``b``,
    both ways: end-to-end heads (RT-DETR) sort their queries by score, and tied scores sort either way."""
    import numpy as np

    rows_a, rows_b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    distance = np.abs(rows_a[:, None, :] - rows_b[None, :, :]).max(-1)
    return float(max(distance.min(0).max(), distance.min(1).max()))


def fresh(args: tuple) -> tuple:
    """Copies of list arguments: Detect heads overwrite their input list's items in place."""
    return tuple(list(a) if isinstance(a, list) else a for a in args)


def clean_copy(value):
    """``value`` with its lists, tuples and dicts rebuilt and its tensors cloned: a layer's input as it was when the
    layer was called, whatever that layer (Detect rewrites its input list) or a later one does to it afterwards."""
    if isinstance(value, (list, tuple)):
        copied = [clean_copy(item) for item in value]
        return copied if isinstance(value, list) else tuple(copied)
    if isinstance(value, dict):
        return {key: clean_copy(item) for key, item in value.items()}
    if callable(getattr(value, "detach", None)) and callable(getattr(value, "clone", None)):  # a tensor
        return value.detach().clone()
    return value


def _fresh_inputs_class():
    import torch

    class FreshInputs(torch.nn.Module):
        """``layer`` called with copies of its list arguments: the exporter runs it more than once on one input."""

        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def forward(self, *args):
            return self.layer(*fresh(args))

    return FreshInputs


def recorded_inputs(model, imgsz: int) -> dict[int, tuple]:
    """Each layer's positional arguments in one forward pass, copied clean as the layer was called."""
    import torch

    inputs: dict[int, tuple] = {}

    def recorder(i: int):
        def record(layer, args) -> None:  # a pre-hook's return value would replace the layer's arguments
            inputs.setdefault(i, clean_copy(args))

        return record

    hooks = [layer.register_forward_pre_hook(recorder(i)) for i, layer in enumerate(model.model)]
    model.eval()
    try:
        with torch.no_grad():
            model(yf_facts.random_images(1, imgsz))
    finally:
        for hook in hooks:
            hook.remove()
    return inputs


def first_unexportable_layer(model, imgsz: int, opset: int | None):
    """(layer ref, exception) of the first layer that does not export alone, with ``opset`` (None: torch's default),
    on a clean copy of its recorded input; (None, None) when every layer does."""
    import torch

    inputs = recorded_inputs(model, imgsz)
    rows = yf_checks.layer_rows(model)
    FreshInputs = _fresh_inputs_class()
    with legacy_onnx_exporter():
        for i, layer in enumerate(model.model):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(FreshInputs(layer), clean_copy(inputs[i]), io.BytesIO(), opset_version=opset)
            except Exception as exc:
                return {"index": rows[i]["index"], "module": rows[i]["module"], "where": class_location(layer)}, exc
    return None, None


def class_location(layer) -> str | None:
    """``file:line`` of the layer's class: where the op that does not export is to be replaced."""
    with contextlib.suppress(TypeError, OSError):
        return f"{inspect.getsourcefile(type(layer))}:{inspect.getsourcelines(type(layer))[1]}"
    return None


def where_in_checkout(exc: BaseException, root: Path) -> str | None:
    """``file:line`` of the deepest traceback frame in the checkout (the user's model code and the exporter it
    ships), else of the deepest frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if Path(f.filename).resolve().is_relative_to(root.resolve())]
    frame = (inside or frames or [None])[-1]
    return f"{frame.filename}:{frame.lineno}" if frame else None


def report_export_failure(report, exc: BaseException, model, imgsz: int, exporter: str, opsets: list,
                          root: Path) -> bool:
    """The exporter failed: name the first layer that fails to export on its own with the exporter's opset (the
    last one it passed to torch.onnx.export), or report the whole-model error when none does."""
    traceback.print_exception(exc)  # on stderr, for a bug in the exporter rather than in a layer
    opset = opsets[-1] if opsets else None
    layer, layer_exc = first_unexportable_layer(model, imgsz, opset) if opsets else (None, None)
    if layer is None:
        with_opset = "torch's default opset" if opset is None else f"opset {opset}"
        why = f"no layer fails to export on its own with {with_opset}" if opsets else "before torch.onnx.export"
        return report.check("export", "fail", f"the {exporter} ONNX export failed: {yf_facts.one_line(exc)} ({why})",
                            where=where_in_checkout(exc, root), layer=None, opset=opset)
    return report.check(
        "export", "fail", f"layer {layer['index']} ({layer['module']}) does not export to ONNX: "
        f"{yf_facts.one_line(layer_exc)}", where=layer.pop("where") or yf_facts.where_in_traceback(layer_exc),
        layer=layer, opset=opset, hint="replace the op with one ONNX has (see torch.onnx's supported operators), or "
                                       "register a symbolic for it with torch.onnx.register_custom_op_symbolic")


def check_export(report, facts: dict, cfg: str, cfg_dict: dict, model, imgsz: int) -> bool:
    """Export with the target's exporter, run it with onnxruntime and compare with PyTorch."""
    missing = missing_packages()
    if missing:
        return report.check("export", "fail", f"{', '.join(missing)} not installed in {sys.executable}",
                            hint=f"{sys.executable} -m pip install {' '.join(missing)}")
    exporter = exporter_of(facts)
    opset = opset_for_exporter(report, facts)
    with legacy_onnx_exporter() as opsets:
        try:
            onnx_file = EXPORTERS[exporter](report, facts, cfg, cfg_dict, model, Path.cwd(), imgsz,
                                            {} if opset is None else {"opset": opset})
        except Exception as exc:
            return report_export_failure(report, exc, model, imgsz, exporter, opsets, Path(facts["root"]))
    try:
        result = compare_with_torch(onnx_file, model, imgsz)
    except Exception as exc:
        return report.check("export", "fail", f"onnxruntime cannot run {onnx_file.name}: {yf_facts.one_line(exc)}",
                            where=yf_facts.where_in_traceback(exc))
    diff, tolerance = result["max_abs_diff"], result["tolerance"]
    details = {"exporter": exporter, "onnx_file": onnx_file.name, "opset": opsets[-1] if opsets else None, **result}
    count = len(result["outputs"])
    which = f"ONNX output {result['output']!r}" if count > 1 else "ONNX output"
    if diff is None:
        return report.check("export", "fail", f"{which} {result['onnx_shape']} has no PyTorch output of that shape "
                            f"(PyTorch's left: {result['unmatched']})", **details)
    verdict = "pass" if diff <= tolerance else "fail"
    unordered = (f" with rows matched regardless of order (in order: {result['ordered_diff']:.2e}; tied scores "
                 "sort either way)") if result["unordered"] else ""
    outputs = f"all {count} outputs, worst {result['output']!r}: " if count > 1 else ""
    return report.check("export", verdict, f"{onnx_file.name} ({exporter} exporter): {outputs}onnxruntime vs PyTorch "
                        f"max |diff| {diff:.2e} ({'within' if verdict == 'pass' else 'above'} {tolerance:.2e}) at "
                        f"{imgsz}x{imgsz}{unordered}", **details)


def mode_export(args, facts: dict) -> dict:
    report, model, cfg_dict = open_model(args, facts)
    if model is not None:
        check_export(report, facts, args.yaml, cfg_dict, model, args.imgsz)
    report.data["ok"] = not report.failed()
    return report.data


def main() -> int:
    return vr.main(modes={"export": mode_export})


if __name__ == "__main__":
    sys.exit(main())
