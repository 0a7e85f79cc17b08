"""Runs inside the target's Python: exports a model YAML to ONNX with the target's own exporter, then compares it.

Like ``verify_runner.py`` (whose facts-driven import, build and JSON protocol this file reuses by importing it as
a sibling), it imports nothing from yamlforge. ``python export_runner.py --mode export --target FACTS --yaml Y
--imgsz N`` builds the model, hands it to the exporter the facts name (the package's model wrapper
``.export(format="onnx")``, or the checkout's ``export.py`` run with ``include=("onnx",)``), runs the ``.onnx``
file with onnxruntime on CPU on the same random image as PyTorch and reports the largest absolute difference of
the first output. When the exporter fails, each layer is exported alone with the input it received in a
forward pass, in model order, and the first one that fails is named.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import io
import os
import sys
import traceback
import warnings
from pathlib import Path

if __package__:  # imported as yamlforge.runners.export_runner (the tests)
    from . import verify_runner as vr
else:  # a script in the target's Python: its own folder is sys.path[0]
    import verify_runner as vr

ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxslim")  # what the exporters and the comparison import
ATOL, RTOL = 1e-3, 1e-4  # |onnx - torch| <= ATOL + RTOL * max|torch|: fused Conv+BN rounds differently
UNORDERED_MAX = 20_000  # outputs up to this size are also compared row by row regardless of order (300 queries x 6)
LAYER_OPSET = 17  # per-layer probing; 17 has every op the targets' own exporters use


def open_model(args, facts: dict):
    """Import the checkout and build ``args.yaml`` the way ``verify`` does; returns (Report, model or None, cfg)."""
    root = Path(facts["root"]).resolve()
    report = vr.Report(target={"kind": facts["kind"], "version": facts["version"], "root": str(root)},
                       yaml=args.yaml, imgsz=args.imgsz, python=sys.executable, imported=None)
    vr.put_checkout_on_path(facts["path_entry"])
    if not vr.import_torch(report) or not vr.check_import(report, facts, root):
        return report, None, None
    model, cfg_dict = vr.build(report, facts, args.yaml, root)
    return report, model, cfg_dict


def missing_packages() -> list[str]:
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


@contextlib.contextmanager
def legacy_onnx_exporter():
    """torch >= 2.9 exports with dynamo by default; the targets' exporters were written for the TorchScript one."""
    import torch

    original = torch.onnx.export
    if "dynamo" not in inspect.signature(original).parameters:
        yield
        return

    @functools.wraps(original)
    def export(*args, **kwargs):
        kwargs.setdefault("dynamo", False)
        return original(*args, **kwargs)

    torch.onnx.export = export
    try:
        yield
    finally:
        torch.onnx.export = original


def export_with_wrapper(report, facts: dict, cfg: str, cfg_dict: dict, model, workdir: Path, imgsz: int) -> Path:
    """The package's model wrapper (``YOLO``, ``RTDETR``) holding ``model``: ``.export(format="onnx")``."""
    wrapper = getattr(importlib.import_module(facts["package"]), vr.by_head(facts["wrappers"], cfg_dict))(cfg)
    wrapper.model = model  # the same weights as the PyTorch reference
    model.pt_path = str(workdir / (Path(cfg).stem + ".pt"))  # the exporter writes next to it, not next to the YAML
    return Path(wrapper.export(format="onnx", imgsz=imgsz, device="cpu", batch=1))


def export_with_script(report, facts: dict, cfg: str, cfg_dict: dict, model, workdir: Path, imgsz: int) -> Path:
    """The checkout's export script (``export.py``): its ``run(weights=..., include=("onnx",))`` on a saved model."""
    import torch

    weights = workdir / (Path(cfg).stem + ".pt")
    torch.save({"model": model}, weights)
    if vr.needs_legacy_load(facts):
        os.environ[vr.LEGACY_LOAD_ENV] = "1"
    script = Path(facts["root"]) / facts["export_script"]
    spec = importlib.util.spec_from_file_location(f"{facts['package']}_export_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run_filling_missing_names(report, module, weights=str(weights), imgsz=[imgsz], include=("onnx",), device="cpu")
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
    """The first output of the ONNX file (onnxruntime, CPU) and of PyTorch on one random image."""
    import numpy as np
    import onnxruntime
    import torch

    x = vr.random_images(1, imgsz)
    model.eval()
    with torch.no_grad():
        reference = next(vr.tensors(model(x))).float().numpy()
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    exported = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    result = {"torch_shape": list(reference.shape), "onnx_shape": list(exported.shape), "max_abs_diff": None,
              "tolerance": None, "unordered": False}
    if exported.shape == reference.shape:
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


def first_unexportable_layer(model, imgsz: int):
    """(layer ref, exception) of the first layer that does not export alone with its recorded input, or (None, None)."""
    import torch

    inputs: dict[int, tuple] = {}
    hooks = [layer.register_forward_pre_hook(lambda mod, args, i=i: inputs.setdefault(i, fresh(args)))
             for i, layer in enumerate(model.model)]
    model.eval()
    try:
        with torch.no_grad():
            model(vr.random_images(1, imgsz))
    finally:
        for hook in hooks:
            hook.remove()
    rows = vr.layer_rows(model)
    FreshInputs = _fresh_inputs_class()
    for i, layer in enumerate(model.model):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(FreshInputs(layer), fresh(inputs[i]), io.BytesIO(), opset_version=LAYER_OPSET,
                                  dynamo=False)
        except Exception as exc:
            return {"index": rows[i]["index"], "module": rows[i]["module"], "where": class_location(layer)}, exc
    return None, None


def class_location(layer) -> str | None:
    """``file:line`` of the layer's class: where the op that does not export is to be replaced."""
    with contextlib.suppress(TypeError, OSError):
        return f"{inspect.getsourcefile(type(layer))}:{inspect.getsourcelines(type(layer))[1]}"
    return None


def report_export_failure(report, exc: BaseException, model, imgsz: int, exporter: str) -> bool:
    """The exporter failed: name the first layer that does not export on its own (or say none does)."""
    traceback.print_exception(exc)  # on stderr, for a bug in the exporter rather than in a layer
    layer, layer_exc = first_unexportable_layer(model, imgsz)
    if layer is None:
        return report.check("export", "fail", f"the {exporter} ONNX export failed: {vr.one_line(exc)} (every layer "
                            "exports on its own)", where=vr.where_in_traceback(exc), layer=None)
    return report.check(
        "export", "fail", f"layer {layer['index']} ({layer['module']}) does not export to ONNX: "
        f"{vr.one_line(layer_exc)}", where=layer.pop("where") or vr.where_in_traceback(layer_exc), layer=layer,
        hint="replace the op with one ONNX has (see torch.onnx's supported operators), or register a symbolic "
             "for it with torch.onnx.register_custom_op_symbolic")


def check_export(report, facts: dict, cfg: str, cfg_dict: dict, model, imgsz: int) -> bool:
    """Export with the target's exporter, run it with onnxruntime and compare with PyTorch."""
    missing = missing_packages()
    if missing:
        return report.check("export", "fail", f"{', '.join(missing)} not installed in {sys.executable}",
                            hint=f"{sys.executable} -m pip install {' '.join(missing)}")
    exporter = exporter_of(facts)
    try:
        with legacy_onnx_exporter():
            onnx_file = EXPORTERS[exporter](report, facts, cfg, cfg_dict, model, Path.cwd(), imgsz)
    except Exception as exc:
        return report_export_failure(report, exc, model, imgsz, exporter)
    try:
        result = compare_with_torch(onnx_file, model, imgsz)
    except Exception as exc:
        return report.check("export", "fail", f"onnxruntime cannot run {onnx_file.name}: {vr.one_line(exc)}",
                            where=vr.where_in_traceback(exc))
    diff, tolerance = result["max_abs_diff"], result["tolerance"]
    details = {"exporter": exporter, "onnx_file": onnx_file.name, **result}
    if diff is None:
        return report.check("export", "fail", f"ONNX output {result['onnx_shape']} has another shape than "
                            f"PyTorch's {result['torch_shape']}", **details)
    verdict = "pass" if diff <= tolerance else "fail"
    unordered = (f" with rows matched regardless of order (in order: {result['ordered_diff']:.2e}; tied scores "
                 "sort either way)") if result["unordered"] else ""
    return report.check("export", verdict, f"{onnx_file.name} ({exporter} exporter): onnxruntime vs PyTorch max "
                        f"|diff| {diff:.2e} ({'within' if verdict == 'pass' else 'above'} {tolerance:.2e}) at "
                        f"{imgsz}x{imgsz}{unordered}", **details)


def mode_export(args, facts: dict) -> dict:
    report, model, cfg_dict = open_model(args, facts)
    if model is not None:
        check_export(report, facts, args.yaml, cfg_dict, model, args.imgsz)
    report.data["ok"] = not report.failed()
    return report.data


def main() -> int:
    vr.MODES["export"] = mode_export
    return vr.main()


if __name__ == "__main__":
    sys.exit(main())
