"""Runs inside the target's Python: imports the checkout, builds/profiles/trains a model YAML, prints one JSON object.

Standalone on purpose: the target interpreter (``--python``) may not have yamlforge, so this file imports
nothing from it. ``yamlforge.check.verify`` runs it as ``python verify_runner.py --mode verify --target FACTS ...``
with the working directory in a temporary folder, and reads the single JSON object it prints on stdout.
Everything the targets print while building or training goes to stderr instead (stdout's file descriptor is
redirected).

``FACTS`` is the JSON of ``yamlforge.targets.Target.runner_facts``: the checkout's root, version, package and
how its own code loads, builds, measures and trains a model. This file knows no target by name: it dispatches
on those facts' values (:data:`LOOKUPS`, :data:`BUILDERS`, :data:`LOSSES`, :data:`TRAINERS`) and refuses, in
one line, facts it does not understand.

``YAMLFORGE_VERIFY_PATH=append`` puts the checkout *last* on ``sys.path`` instead of first. It exists so the
tests can reproduce a checkout shadowed by a pip-installed copy of the same package with the real detection
logic; users never need it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

VERIFY_SCHEMA = "yamlforge.verify/1"
FACTS_SCHEMA = "yamlforge.target/1"
# Every key of the facts JSON this runner reads (yamlforge's Target.runner_facts sends exactly these).
FACT_KEYS = frozenset({
    "schema", "kind", "version", "root", "package", "tasks_module", "modules_dir", "yaml_loader", "name_lookup",
    "build", "model_class", "wrappers", "flops_function", "loss", "loss_args", "trainer", "train_scripts",
    "checkpoint_loader", "safe_load_env", "safe_load_since", "uninstall_hint", "stock_names", "ddp_launcher",
    "thop_distribution", "thop_distribution_since", "checkpoint_fields", "path_entry", "train_flags",
    "train_hyp", "legacy_numpy", "export_script",
})
# Checkout loaders that predate torch 2.6's weights_only=True default (YOLOv9, Ultralytics before 8.1.x) need this.
LEGACY_LOAD_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
# What numpy removed (np.int, np.float in 1.24; np.trapz in 2.4) and YOLOv5/v7's training code still calls.
NUMPY_ALIASES = "numpy.int = int; numpy.float = float; numpy.trapz = getattr(numpy, 'trapz', None) or numpy.trapezoid"
TRAIN_IMGSZ_MAX = 160  # the smoke training proves the loop works; image size does not matter for that

# Hyperparameters for trainer "script": a superset of the keys the YOLOv5-style train.py scripts read.
SCRIPT_HYP = {
    "lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "weight_decay": 0.0005, "warmup_epochs": 0.0,
    "warmup_momentum": 0.8, "warmup_bias_lr": 0.1, "box": 7.5, "cls": 0.5, "cls_pw": 1.0, "obj": 0.7,
    "obj_pw": 1.0, "dfl": 1.5, "iou_t": 0.2, "anchor_t": 5.0, "fl_gamma": 0.0, "hsv_h": 0.015, "hsv_s": 0.7,
    "hsv_v": 0.4, "degrees": 0.0, "translate": 0.1, "scale": 0.5, "shear": 0.0, "perspective": 0.0,
    "flipud": 0.0, "fliplr": 0.5, "mosaic": 1.0, "mixup": 0.0, "copy_paste": 0.0,
}


class FactsError(ValueError):
    """The ``--target`` facts are not something this runner understands (a yamlforge version mismatch)."""


class Report:
    """Collects checks in the order they run; the first failure is what the user reads first."""

    def __init__(self, **meta):
        self.data = {"schema": VERIFY_SCHEMA, "checks": [], "layers": [], "totals": {}, "notes": [], **meta}

    def check(self, name, status, message, hint=None, **details):
        self.data["checks"].append({"name": name, "status": status, "message": message, "hint": hint, **details})
        return status != "fail"

    def note(self, text):
        self.data["notes"].append(text)

    def failed(self):
        return any(c["status"] == "fail" for c in self.data["checks"])


# ------------------------------------------------------------------ target facts


def read_facts(text: str) -> dict:
    """The ``--target`` JSON, checked: right schema, every key present, every strategy one this file has."""
    try:
        facts = json.loads(text)
    except ValueError as exc:
        raise FactsError(f"--target is not JSON ({exc})") from None
    schema = facts.get("schema") if isinstance(facts, dict) else None
    if schema != FACTS_SCHEMA:
        raise FactsError(f"--target has schema {schema!r}; this runner reads {FACTS_SCHEMA}")
    missing = sorted(FACT_KEYS - set(facts))
    if missing:
        raise FactsError(f"--target lacks {', '.join(missing)}")
    strategies = {"name_lookup": LOOKUPS, "build": BUILDERS, "loss": LOSSES, "trainer": TRAINERS}
    for key, known in strategies.items():
        if facts[key] not in known:
            raise FactsError(f"--target {key} {facts[key]!r} is not one this runner knows ({', '.join(known)})")
    return facts


def load_callable(spec: str):
    """The object a ``"module:name"`` fact names, imported from the checkout."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def by_head(pairs, cfg_dict: dict) -> str:
    """The value of the first ``(head module prefix, value)`` pair the model's head module starts with."""
    head = head_module(cfg_dict)
    return next(value for prefix, value in pairs if head.startswith(prefix))


def head_module(cfg_dict: dict) -> str:
    head = cfg_dict.get("head") or []
    return str(head[-1][2]) if head and len(head[-1]) > 2 else ""


def version_at_least(version: str | None, since: str | None) -> bool:
    def numbers(text):
        return tuple(int(v) for v in re.findall(r"\d+", text)[:2])

    return bool(version and since) and numbers(version) >= numbers(since)


# ------------------------------------------------------------------ import


def put_checkout_on_path(root: str) -> None:
    """Make the checkout importable: ``root`` is the facts' ``path_entry`` (the parent of a pip-packaged root)."""
    if os.environ.get("YAMLFORGE_VERIFY_PATH") == "append":
        sys.path.append(root)
    else:
        sys.path.insert(0, root)


def imported_package(package: str, root: Path) -> dict:
    """Import the target package the way the model code will and say where it came from."""
    module = __import__(package)
    file = Path(module.__file__).resolve()
    inside = root.resolve() in file.parents
    return {"package": package, "file": str(file), "version": getattr(module, "__version__", None),
            "inside_checkout": inside}


def check_import(report: Report, facts: dict, root: Path) -> bool:
    try:
        info = imported_package(facts["package"], root)
    except Exception as exc:  # a syntax error in a patched file, a missing dependency of the target
        report.data["imported"] = None
        return report.check("import", "fail", f"importing the checkout failed: {one_line(exc)}",
                            hint=hint_for(exc, facts["package"]) or f"yamlforge doctor --repo {root}",
                            where=where_in_traceback(exc))
    report.data["imported"] = info
    if info["inside_checkout"]:
        return report.check("import", "pass", f"{info['package']} imported from the checkout ({info['file']})")
    version = f" {info['version']}" if info["version"] else ""
    return report.check(
        "import", "fail",
        f"Python imports {info['package']}{version} from {info['file']}, not from the checkout {root}: "
        "your edits to the checkout are invisible to it (the classic symptom is KeyError: '<YourModule>' "
        "when the model is built)",
        hint=f"{facts['uninstall_hint']} (or `pip install -e {root}`), or run with PYTHONPATH={root}")


# ------------------------------------------------------------------ helpers


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


PIP_NAMES = {"cpuinfo": "py-cpuinfo", "cv2": "opencv-python", "yaml": "PyYAML", "PIL": "pillow",
             "thop": "ultralytics-thop", "sklearn": "scikit-learn",
             "huggingface_hub": "'huggingface_hub<0.25'"}  # yolov5 7.0's train.py imports a module 0.25 removed


def hint_for(exc: BaseException, package: str) -> str | None:
    """The install command for a module the target needs but this Python lacks (not the target's own ``package``),
    or for the torchvision that matches torch."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        if top != package:
            return f"{sys.executable} -m pip install {PIP_NAMES.get(top, top)}"
    if isinstance(exc, RuntimeError) and "torchvision::" in str(exc):  # "operator torchvision::nms does not exist"
        import torch

        wanted = matching_torchvision(torch.__version__)
        fix = f"{sys.executable} -m pip install '{wanted}'" if wanted else "install the torchvision made for it"
        return f"torchvision was built for another torch than {torch.__version__}: {fix}"
    return None


def matching_torchvision(torch_version: str) -> str | None:
    """The torchvision requirement released with ``torch_version`` (torch 2.m ships with torchvision 0.(m+15))."""
    major, minor = (int(v) for v in re.findall(r"\d+", torch_version)[:2])
    return f"torchvision==0.{minor + 15}.*" if major == 2 else None


def where_in_traceback(exc: BaseException) -> str | None:
    """The deepest ``file:line`` of the traceback inside the checkout or model code."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


def failing_layer(exc: BaseException) -> dict | None:
    """The layer being built (parse_model's ``i``, ``m``) or run (innermost ``self`` with ``.i``) when ``exc`` rose."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        local = tb.tb_frame.f_locals
        layer = local.get("self")
        if tb.tb_frame.f_code.co_name == "parse_model" and isinstance(local.get("i"), int):
            found = {"index": local["i"], "module": str(local.get("m"))}
        elif isinstance(getattr(layer, "i", None), int) and hasattr(layer, "f"):
            found = {"index": layer.i, "module": type(layer).__name__}
        tb = tb.tb_next
    if found and "." in found["module"] and not found["module"].startswith("nn."):
        found["module"] = found["module"].rsplit(".", 1)[-1].rstrip("'>")
    return found


def fail_at_layer(report: Report, name: str, exc: BaseException, doing: str, hint: str | None = None) -> bool:
    """A failed check ``name`` whose message starts with the layer that raised ``exc`` (when there is one)."""
    layer = failing_layer(exc)
    at = f"layer {layer['index']} ({layer['module']}): " if layer else ""
    return report.check(name, "fail", f"{at}{doing}: {one_line(exc)}", hint=hint, where=where_in_traceback(exc),
                        layer=layer)


def tensors(obj):
    """Every tensor in a nested output (tuples, lists, dicts)."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors(item)


def shape_of(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return list(obj.shape)
    if isinstance(obj, (list, tuple)):
        return [shape_of(o) for o in obj if o is not None]
    return None


def random_images(batch: int, imgsz: int):
    import torch

    torch.manual_seed(0)
    return torch.rand(batch, 3, imgsz, imgsz)


# ------------------------------------------------------------------ build


def load_yaml_dict(facts: dict, cfg: str) -> dict:
    """The model YAML as the target reads it (its own loader where it has one)."""
    if facts["yaml_loader"]:
        return load_callable(facts["yaml_loader"])(cfg)
    import yaml

    with open(cfg, encoding="utf-8") as f:
        return yaml.safe_load(f)


def known_in_namespace(name: str, namespace: dict) -> bool:
    """parse_model does ``globals()[m]``."""
    return name in namespace


def known_to_eval(name: str, namespace: dict) -> bool:
    """parse_model does ``eval(m)`` in its module."""
    try:
        eval(name, namespace)
    except Exception:
        return False
    return True


LOOKUPS = {"namespace": known_in_namespace, "eval": known_to_eval}


def is_known(name: str, namespace: dict, lookup) -> bool:
    import torch

    if name.startswith("nn."):
        return hasattr(torch.nn, name[3:])
    if name.startswith("torchvision.ops."):  # Ultralytics 8.3+: parse_model resolves these from torchvision
        return hasattr(importlib.import_module("torchvision.ops"), name[len("torchvision.ops."):])
    return lookup(name, namespace)


def unknown_modules(facts: dict, cfg_dict: dict) -> list[dict]:
    """Layers naming a module the target's parse_model cannot resolve (it would raise KeyError / NameError)."""
    namespace = vars(importlib.import_module(facts["tasks_module"]))
    lookup = LOOKUPS[facts["name_lookup"]]
    unknown = []
    for index, layer in enumerate((cfg_dict.get("backbone") or []) + (cfg_dict.get("head") or [])):
        name = layer[2] if isinstance(layer, (list, tuple)) and len(layer) > 2 else None
        if isinstance(name, str) and not is_known(name, namespace, lookup):
            unknown.append({"index": index, "module": name})
    return unknown


def report_unknown(report: Report, unknown: list[dict], root: Path) -> None:
    first = unknown[0]
    names = sorted({u["module"] for u in unknown})
    imported = report.data.get("imported") or {}
    if imported.get("inside_checkout", True):
        known_to = str(root)
    else:
        known_to = f"the {imported['package']} Python imports ({imported['file']}; see the import check)"
    report.check("build", "fail", f"layer {first['index']}: module {first['module']} is not known to {known_to}",
                 hint=" ; ".join(f"yamlforge apply --repo {root} --module {n}" for n in names),
                 unknown_modules=unknown)


def build_with_wrapper(facts: dict, cfg: str, cfg_dict: dict):
    """The package's model wrapper (``YOLO``, ``RTDETR``: chosen by the head) builds it."""
    wrapper_cls = getattr(importlib.import_module(facts["package"]), by_head(facts["wrappers"], cfg_dict))
    return wrapper_cls(cfg).model, f"{wrapper_cls.__name__}({Path(cfg).name})"


def build_with_model_class(facts: dict, cfg: str, cfg_dict: dict):
    """The checkout's model class builds it from the YAML file (``models.yolo.Model(cfg, ch=3)``)."""
    model_cls = load_callable(facts["model_class"])
    return model_cls(cfg, ch=3), f"{facts['model_class'].replace(':', '.')}({Path(cfg).name})"


BUILDERS = {"wrapper": build_with_wrapper, "model_class": build_with_model_class}


def build(report: Report, facts: dict, cfg: str, root: Path):
    """The target's own build; returns (the nn.Module holding ``.model`` layers or None, the YAML dict or None)."""
    try:
        cfg_dict = load_yaml_dict(facts, cfg)
    except Exception as exc:
        report.check("build", "fail", f"the target cannot read the model YAML: {one_line(exc)}", where=cfg)
        return None, None
    unknown = unknown_modules(facts, cfg_dict)
    if unknown:
        report_unknown(report, unknown, root)
        return None, cfg_dict
    started = time.perf_counter()
    try:
        model, builder = BUILDERS[facts["build"]](facts, cfg, cfg_dict)
    except Exception as exc:
        fail_at_layer(report, "build", exc, "the model does not build", hint=hint_for(exc, facts["package"]))
        return None, cfg_dict
    report.data["builder"] = builder
    report.check("build", "pass", f"{builder} built {type(model).__name__} in {time.perf_counter() - started:.1f} s")
    return model, cfg_dict


# ------------------------------------------------------------------ forward / flops / backward


def layer_rows(model) -> list[dict]:
    rows = []
    for layer in model.model:
        rows.append({
            "index": int(getattr(layer, "i", len(rows))),
            "from": getattr(layer, "f", -1),
            "module": str(getattr(layer, "type", type(layer).__name__)).rsplit(".", 1)[-1],
            "params": int(sum(p.numel() for p in layer.parameters())),
            "shape": None,
            "stride": None,
        })
    return rows


def fill_shapes(rows: list[dict], outputs: dict, imgsz: int) -> None:
    """Each row's output shape and, for 4-D outputs, its stride (input size / output width)."""
    import torch

    for i, row in enumerate(rows):
        out_i = outputs.get(i)
        row["shape"] = shape_of(out_i)
        if isinstance(out_i, torch.Tensor) and out_i.dim() == 4 and out_i.shape[-1]:
            stride = imgsz / out_i.shape[-1]
            row["stride"] = int(stride) if stride == int(stride) else round(stride, 3)


def check_forward(report: Report, model, imgsz: int, batch: int) -> bool:
    import torch

    rows = layer_rows(model)
    report.data["layers"] = rows
    outputs: dict[int, object] = {}
    handles = [layer.register_forward_hook(lambda mod, inp, out, i=i: outputs.__setitem__(i, out))
               for i, layer in enumerate(model.model)]
    x = random_images(batch, imgsz)
    model.eval()
    try:
        with torch.no_grad():
            started = time.perf_counter()
            out = model(x)
            elapsed = time.perf_counter() - started
    except Exception as exc:
        return fail_at_layer(report, "forward", exc, f"forward pass at {imgsz}x{imgsz} failed")
    finally:
        for handle in handles:
            handle.remove()
    fill_shapes(rows, outputs, imgsz)
    totals = report.data["totals"]
    totals["layers"] = len(rows)
    totals["parameters"] = int(sum(p.numel() for p in model.parameters()))
    totals["forward_ms"] = round(elapsed * 1000, 1)
    for i, row in enumerate(rows):
        bad = [t for t in tensors(outputs.get(i)) if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:
            return report.check("forward", "fail", f"layer {row['index']} ({row['module']}) outputs NaN/Inf",
                                layer={"index": row["index"], "module": row["module"]})
    if not any(True for _ in tensors(out)):
        return report.check("forward", "fail", "the model's forward returned no tensor")
    return report.check("forward", "pass",
                        f"{len(rows)} layers, batch {batch} at {imgsz}x{imgsz}: {elapsed * 1000:.0f} ms on CPU")


def first_undeepcopyable_layer(model):
    for layer in model.model:
        try:
            copy.deepcopy(layer)
        except Exception as exc:
            return {"index": int(getattr(layer, "i", -1)), "module": type(layer).__name__}, exc
    return None, None


def check_flops(report: Report, facts: dict, model, imgsz: int) -> bool:
    """GFLOPs with thop at imgsz (the number must be > 0), and the target's own figure where it has one."""
    import torch

    try:
        import thop
    except ImportError:
        return report.check("flops", "fail", "thop is not installed in the target Python, so GFLOPs print 0",
                            hint=f"{sys.executable} -m pip install ultralytics-thop")
    totals = report.data["totals"]
    totals["gflops"] = None
    totals["target_gflops"] = None
    if facts["flops_function"]:
        with contextlib.suppress(Exception):  # releases without get_flops: thop's figure below is what counts
            totals["target_gflops"] = round(float(load_callable(facts["flops_function"])(model, imgsz)), 3)
    layer, deepcopy_error = first_undeepcopyable_layer(model)
    x = torch.zeros(1, 3, imgsz, imgsz)
    model.eval()
    try:
        profiled = model if deepcopy_error else copy.deepcopy(model)
        macs = thop.profile(profiled, inputs=(x,), verbose=False)[0]
        gflops = macs * 2 / 1e9
    except Exception as exc:
        return report.check("flops", "fail", f"thop could not profile the model at {imgsz}: {one_line(exc)}; "
                            "the target prints GFLOPs 0", where=where_in_traceback(exc), layer=failing_layer(exc))
    totals["gflops"] = round(gflops, 3)
    if deepcopy_error is not None:
        return report.check(
            "flops", "fail",
            f"layer {layer['index']} ({layer['module']}) cannot be deep-copied ({one_line(deepcopy_error)}): "
            + ("the target prints GFLOPs 0 (it profiles a deepcopy) and " if totals["target_gflops"] == 0 else "")
            + "training's EMA copy fails",
            hint="keep derived tensors out of module attributes: compute them in forward() or register_buffer() "
                 "them from a detached value", layer=layer)
    cause = thop_trap(facts) if 0 in (gflops, totals["target_gflops"]) else None
    return flops_verdict(report, gflops, totals["target_gflops"], imgsz, cause)


def flops_verdict(report: Report, gflops: float, target_gflops: float | None, imgsz: int,
                  cause: dict | None = None) -> bool:
    """``cause``: the environment trap (another package's thop) that explains a 0, if there is one."""
    if not gflops > 0:
        return report.check("flops", "fail", f"thop counts 0 GFLOPs at {imgsz}: "
                            + (cause["message"] if cause else "no layer it knows how to count ran"),
                            hint=cause["fix"] if cause else
                            "build the module from torch.nn layers (Conv2d, Linear) so FLOPs are counted")
    if target_gflops == 0:
        return report.check("flops", "warn",
                            f"thop counts {gflops:.2f} GFLOPs at {imgsz}, but the target's own get_flops returns 0 "
                            + (f"because {cause['message']}" if cause else "(its stride-sized probe fails)"),
                            hint=cause["fix"] if cause else
                            f"yamlforge apply --repo {report.data['target']['root']} --fix flops")
    return report.check("flops", "pass", f"{gflops:.2f} GFLOPs at {imgsz}x{imgsz}")


def synthetic_batch(x) -> dict:
    """Two boxes per image in the layout the Ultralytics losses read (normalised xywh, per-box image index)."""
    import torch

    n = x.shape[0]
    return {
        "img": x,
        "batch_idx": torch.arange(n).repeat_interleave(2).float(),
        "cls": torch.tensor([[0.0], [1.0]]).repeat(n, 1),
        "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.3], [0.3, 0.6, 0.2, 0.4]]).repeat(n, 1),
    }


def summed_outputs(facts: dict, model, x):
    """The loss of targets whose detection loss needs a trainer's state: every floating output's mean, summed."""
    out = model(x)
    parts = [t.float().mean() for t in tensors(out) if t.is_floating_point() and t.requires_grad]
    return (sum(parts) if parts else None), "the summed outputs"


def model_loss(facts: dict, model, x):
    """The model's own detection loss (self-contained once it has the default hyperparameters and ``nc``)."""
    if not hasattr(model, "loss"):
        return summed_outputs(facts, model, x)
    if not hasattr(getattr(model, "args", None), "box"):  # a bare build keeps args as a dict
        model.args = load_callable(facts["loss_args"])()
    if not hasattr(model, "nc"):  # the trainer sets it from the dataset; the head knows it too
        model.nc = getattr(model.model[-1], "nc", None) or model.yaml.get("nc")
    loss = model.loss(synthetic_batch(x))[0]
    return loss.sum(), "the target's detection loss"


LOSSES = {"model_loss": model_loss, "summed_outputs": summed_outputs}


def watch_gradients(model) -> tuple[dict[int, bool], list]:
    """Hooks recording, per layer, whether every gradient reaching its outputs is finite; returns (record, handles)."""
    import torch

    finite_out: dict[int, bool] = {}

    def watch(i):
        def hook(mod, inp, out):
            for t in tensors(out):
                if t.requires_grad:
                    # g is None for an output of a multi-output autograd.Function that the loss does not read
                    # (a RevCol P2/4 map under a P3-P5 head): no gradient there, so nothing non-finite either.
                    t.register_hook(lambda g, i=i: finite_out.__setitem__(
                        i, finite_out.get(i, True) and (g is None or bool(torch.isfinite(g).all()))))
        return hook

    return finite_out, [layer.register_forward_hook(watch(i)) for i, layer in enumerate(model.model)]


def nonfinite_source(model, finite_out: dict[int, bool]) -> dict | None:
    """The layer that receives a finite gradient and passes on NaN/Inf."""
    for i, layer in enumerate(model.model):
        froms = layer.f if isinstance(layer.f, list) else [layer.f]
        inputs = [i + f if f < 0 else f for f in froms]
        if finite_out.get(i, True) and any(finite_out.get(j) is False for j in inputs):
            return {"index": int(getattr(layer, "i", i)), "module": type(layer).__name__}
    return None


def check_backward(report: Report, facts: dict, model, imgsz: int, batch: int) -> bool:
    """One backward pass: every gradient finite (else: the first bad parameter and the layer it starts at)."""
    import torch

    finite_out, handles = watch_gradients(model)
    model.train()
    for p in model.parameters():
        p.grad = None
    try:
        loss, what = LOSSES[facts["loss"]](facts, model, random_images(batch, imgsz))
        if loss is None:
            return report.check("backward", "fail", "no model output depends on a trainable parameter")
        loss.backward()
    except Exception as exc:
        return fail_at_layer(report, "backward", exc, "training forward/backward failed")
    finally:
        for handle in handles:
            handle.remove()
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    no_grad = [name for name, p in trainable if p.grad is None]
    nonfinite = [name for name, p in trainable if p.grad is not None and not torch.isfinite(p.grad).all()]
    gradients = report.data["gradients"] = {
        "finite": not nonfinite, "first_nonfinite": nonfinite[0] if nonfinite else None,
        "nonfinite_count": len(nonfinite), "no_grad": no_grad, "source_layer": None, "loss": what}
    if nonfinite:
        source = gradients["source_layer"] = nonfinite_source(model, finite_out)
        at = f"; the NaN/Inf starts at layer {source['index']} ({source['module']})" if source else ""
        return report.check("backward", "fail",
                            f"{len(nonfinite)} parameters get NaN/Inf gradients from {what}, first {nonfinite[0]}{at}",
                            layer=source)
    extra = f"; {len(no_grad)} parameters got no gradient" if no_grad else ""
    return report.check("backward", "pass", f"all gradients of {what} finite{extra}")


# ------------------------------------------------------------------ synthetic data + smoke training


def make_dataset(folder: Path, imgsz: int, count: int = 6, seed: int = 0) -> Path:
    """A few images with coloured rectangles (class 0) and ellipses (class 1) and their YOLO labels."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    images, labels = folder / "images" / "train", folder / "labels" / "train"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        img = np.full((imgsz, imgsz, 3), rng.integers(0, 255, 3), dtype=np.uint8)
        lines = []
        for _ in range(int(rng.integers(1, 4))):
            w, h = (int(v) for v in rng.integers(imgsz // 6, imgsz // 2, 2))
            x0, y0 = int(rng.integers(0, imgsz - w)), int(rng.integers(0, imgsz - h))
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            cls = int(rng.integers(0, 2))
            if cls == 0:
                cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), colour, -1)
            else:
                cv2.ellipse(img, (x0 + w // 2, y0 + h // 2), (w // 2, h // 2), 0, 0, 360, colour, -1)
            lines.append(f"{cls} {(x0 + w / 2) / imgsz:.6f} {(y0 + h / 2) / imgsz:.6f} {w / imgsz:.6f} {h / imgsz:.6f}")
        cv2.imwrite(str(images / f"im{n}.jpg"), img)
        (labels / f"im{n}.txt").write_text("\n".join(lines) + "\n")
    data = folder / "data.yaml"
    # Absolute paths: YOLOv7 reads no ``path:`` key
    data.write_text(json.dumps({"path": str(folder), "train": str(images), "val": str(images),
                                "nc": 2, "names": ["rectangle", "ellipse"]}))  # JSON is valid YAML
    return data


def provide_fonts() -> None:
    """Put a local TTF where the targets look for Arial, so their dataset checks do not download one."""
    try:
        import matplotlib

        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    except Exception:
        return
    for env in ("YOLO_CONFIG_DIR", "YOLOV5_CONFIG_DIR"):
        folder = os.environ.get(env)
        if folder and source.is_file():
            for name in ("Arial.ttf", "Arial.Unicode.ttf"):
                target = Path(folder) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    target.write_bytes(source.read_bytes())


def needs_legacy_load(facts: dict) -> bool:
    """torch >= 2.6 loads with weights_only=True unless told otherwise; old checkpoint loaders never say."""
    import inspect

    import torch

    major, minor = (int(v) for v in re.findall(r"\d+", torch.__version__)[:2])
    if (major, minor) < (2, 6):
        return False
    return "weights_only" not in inspect.getsource(load_callable(facts["checkpoint_loader"]))


def train_with_wrapper(report: Report, facts: dict, cfg: str, cfg_dict: dict, workdir: Path, imgsz: int,
                       batch: int) -> bool:
    """The wrapper's own ``.train()`` for one epoch, then a reload (and a restricted reload where there is one)."""
    wrapper_name = by_head(facts["wrappers"], cfg_dict)
    data = make_dataset(workdir / "data", imgsz)
    started = time.perf_counter()
    try:
        model = getattr(importlib.import_module(facts["package"]), wrapper_name)(cfg)
        model.train(data=str(data), epochs=1, imgsz=imgsz, batch=batch, workers=0, device="cpu", plots=False,
                    amp=False, project=str(workdir / "runs"), name="train", exist_ok=True, verbose=False,
                    val=False)
        trainer = model.trainer
        weights = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    except Exception as exc:
        return fail_at_layer(report, "train", exc, "1-epoch smoke training failed",
                             hint=hint_for(exc, facts["package"]))
    report.data["train"] = {"weights": str(weights), "imgsz": imgsz, "seconds": round(time.perf_counter() - started, 1)}
    report.check("train", "pass", f"1 epoch on {len(list((workdir / 'data/images/train').iterdir()))} synthetic "
                 f"images at {imgsz} with {wrapper_name}.train in {time.perf_counter() - started:.0f} s")
    image = next((workdir / "data" / "images" / "train").iterdir())
    try:
        boxes = predict_with_wrapper(facts["package"], wrapper_name, weights, image, imgsz)
    except Exception as exc:
        return report.check("reload", "fail", f"{wrapper_name}('{weights.name}') + predict failed: "
                            f"{one_line(exc)}", where=where_in_traceback(exc))
    report.check("reload", "pass", f"{wrapper_name}('{weights.name}') reloaded and predicted ({boxes} boxes)")
    if facts["safe_load_env"] and version_at_least(facts["version"], facts["safe_load_since"]):
        return check_safe_reload(report, facts, wrapper_name, weights, image, imgsz)
    return True


def predict_with_wrapper(package: str, wrapper_name: str, weights: Path, image: Path, imgsz: int) -> int:
    model = getattr(importlib.import_module(package), wrapper_name)(str(weights))
    results = model.predict(str(image), imgsz=imgsz, device="cpu", verbose=False, save=False)
    return len(results[0].boxes) if results and results[0].boxes is not None else 0


def check_safe_reload(report: Report, facts: dict, wrapper_name: str, weights: Path, image: Path, imgsz: int) -> bool:
    """A restricted loader only accepts classes from the target's own module files: reload in a fresh process."""
    env_name = facts["safe_load_env"]
    cmd = [sys.executable, __file__, "--mode", "predict", "--target", json.dumps(facts), "--weights", str(weights),
           "--image", str(image), "--imgsz", str(imgsz), "--wrapper", wrapper_name]
    result = subprocess.run(cmd, env=dict(os.environ, **{env_name: "1"}), capture_output=True, text=True, check=False)
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        answer = {"error": (result.stderr.strip().splitlines() or ["no output"])[-1]}
    if "error" in answer:
        return report.check("safe_reload", "fail",
                            f"with {env_name}=1 the checkpoint does not reload: {answer['error']}",
                            hint=f"place the module's file directly in {facts['modules_dir']}/ (yamlforge apply does)")
    return report.check("safe_reload", "pass", f"reloaded with {env_name}=1 and predicted ({answer['boxes']} boxes)")


def run_train_script(facts: dict, script: str, cfg: str, workdir: Path, imgsz: int, batch: int):
    """The checkout's own training script for one epoch; returns (its CompletedProcess, the checkpoint or None)."""
    data = make_dataset(workdir / "data", imgsz)
    hyp = workdir / "hyp.yaml"
    hyp.write_text(Path(facts["train_hyp"]).read_text() if facts["train_hyp"] else json.dumps(SCRIPT_HYP))
    cmd = [sys.executable, str(Path(facts["root"]) / script), "--cfg", str(Path(cfg).resolve()), "--data", str(data),
           "--hyp", str(hyp), "--weights", "", "--epochs", "1", "--batch-size", str(batch), "--img", str(imgsz),
           "--device", "cpu", "--workers", "0", "--project", str(workdir / "runs"), "--name", "train",
           "--exist-ok", *facts["train_flags"]]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=script_env(facts, workdir),
                            check=False)
    sys.stderr.write(result.stdout[-4000:] + result.stderr[-8000:])
    weights_dir = workdir / "runs" / "train" / "weights"
    return result, next((w for w in (weights_dir / "best.pt", weights_dir / "last.pt") if w.is_file()), None)


def script_env(facts: dict, workdir: Path) -> dict:
    """The training script's environment: the checkout importable (a packaged one imports ``yolov5.models...``),
    and numpy's removed names (``np.int``, ``np.trapz``) restored for targets whose training code still uses them."""
    paths = [facts["path_entry"]]
    if facts["legacy_numpy"]:
        shim = workdir / "numpy-aliases"
        shim.mkdir(exist_ok=True)
        (shim / "sitecustomize.py").write_text(f"import numpy\n{NUMPY_ALIASES}\n")
        paths.insert(0, str(shim))
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


def train_with_script(report: Report, facts: dict, cfg: str, cfg_dict: dict, workdir: Path, imgsz: int,
                      batch: int) -> bool:
    """The checkout's training script (chosen by the head) for one epoch, then its checkpoint loader + a forward."""
    script = by_head(facts["train_scripts"], cfg_dict)
    where = str(Path(facts["root"]) / script)
    started = time.perf_counter()
    result, weights = run_train_script(facts, script, cfg, workdir, imgsz, batch)
    if result.returncode or weights is None:
        tail = [line for line in result.stderr.strip().splitlines() if line.strip()]
        missing = re.search(r"No module named '([\w.]+)'", tail[-1] if tail else "")
        hint = hint_for(ModuleNotFoundError(name=missing.group(1)), facts["package"]) if missing else None
        return report.check("train", "fail", f"{script} (1 epoch) failed: {tail[-1] if tail else 'no checkpoint'}",
                            hint=hint, where=where)
    report.data["train"] = {"weights": str(weights), "imgsz": imgsz, "seconds": round(time.perf_counter() - started, 1)}
    report.check("train", "pass", f"1 epoch on synthetic images at {imgsz} with {script} in "
                 f"{time.perf_counter() - started:.0f} s")
    loader = facts["checkpoint_loader"].partition(":")[2]
    try:
        import torch

        model = load_callable(facts["checkpoint_loader"])(str(weights), torch.device("cpu"))
        with torch.no_grad():
            out = model(torch.zeros(1, 3, imgsz, imgsz))
        boxes = shape_of(next(tensors(out)))
    except Exception as exc:
        return report.check("reload", "fail", f"{loader}('{weights.name}') + predict failed: {one_line(exc)}",
                            where=where_in_traceback(exc))
    return report.check("reload", "pass", f"{loader}('{weights.name}') reloaded and predicted {boxes}")


TRAINERS = {"wrapper": train_with_wrapper, "script": train_with_script}


def check_train(report: Report, facts: dict, cfg: str, cfg_dict: dict, imgsz: int, batch: int) -> None:
    """One epoch with the target's own trainer on a synthetic dataset, in the working directory, then a reload."""
    if report.failed():
        report.check("train", "skip", "not run: an earlier check failed")
        return
    if needs_legacy_load(facts):
        import torch

        os.environ[LEGACY_LOAD_ENV] = "1"
        report.note(f"the checkout's loader predates torch {torch.__version__}'s weights_only=True default; "
                    f"training and reloading ran with {LEGACY_LOAD_ENV}=1 (set it too, or pin torch<2.6)")
    provide_fonts()
    train_imgsz = max(32, min(imgsz, TRAIN_IMGSZ_MAX) // 32 * 32)
    TRAINERS[facts["trainer"]](report, facts, cfg, cfg_dict, Path.cwd(), train_imgsz, batch)


# ------------------------------------------------------------------ environment traps

# What a DDP worker does first. torch.distributed.run starts ``python -u <script>`` with the script Ultralytics
# writes into the user's config folder: sys.path holds that folder and site-packages, never the checkout.
DDP_WORKER = """import importlib.util, json
spec = importlib.util.find_spec({package!r})
print(json.dumps(spec and spec.origin))
"""


def relaunch_keeps_path(facts: dict) -> bool:
    """Ultralytics 8.4 writes the trainer's own sys.path into the DDP script: its workers import what it imports."""
    import inspect

    return re.search(r"\bsys\.path\s*=", inspect.getsource(load_callable(facts["ddp_launcher"]))) is not None


def fresh_worker_origin(package: str) -> str | None:
    """The file a DDP worker (a fresh Python running a script outside the checkout) imports ``package`` from."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="yamlforge-ddp-") as tmp:
        script = Path(tmp) / "ddp_worker.py"
        script.write_text(DDP_WORKER.format(package=package), encoding="utf-8")
        result = subprocess.run([sys.executable, "-u", str(script)], cwd=tmp, capture_output=True, text=True,
                                timeout=120, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def version_in(init_file: str) -> str:
    text = Path(init_file).read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    return match.group(1) if match else "(no version)"


def checkout_on_path_fix(facts: dict, root: Path, shadowed: bool) -> str:
    """How to make every Python started in this environment import the checkout."""
    if (root / "pyproject.toml").is_file() or (root / "setup.py").is_file():
        return f"{sys.executable} -m pip install -e {root}"
    import sysconfig

    pth = Path(sysconfig.get_paths()["purelib"]) / f"{facts['package']}-checkout.pth"
    first = f"{facts['uninstall_hint']}, then " if shadowed else ""
    return (f"{first}echo {root} > {pth}  (the checkout has no pyproject.toml or setup.py for `pip install -e`; "
            "a .pth file in site-packages puts it on every Python's path)")


def ddp_trap(facts: dict, root: Path) -> dict | None:
    """Multi-GPU training re-imports the target in fresh workers outside the checkout: do they get the checkout?"""
    if not facts["ddp_launcher"] or relaunch_keeps_path(facts):
        return None
    package = facts["package"]
    origin = fresh_worker_origin(package)
    if origin and root in Path(origin).resolve().parents:
        return None
    found = f"imports {package} {version_in(origin)} from {origin}" if origin else f"cannot import {package}"
    return {"name": "ddp",
            "message": f"multi-GPU (DDP) training runs its workers in a fresh Python outside the checkout, and that "
                       f"Python {found}: DDP training dies with KeyError: '<your module>' (single-GPU training works)",
            "fix": checkout_on_path_fix(facts, root, shadowed=origin is not None)}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def thop_owners(origin: Path) -> list[str]:
    """The installed distributions that recorded ``thop/__init__.py`` at ``origin`` with its current content."""
    import base64
    import hashlib
    from importlib import metadata

    digest = base64.urlsafe_b64encode(hashlib.sha256(origin.read_bytes()).digest()).rstrip(b"=").decode()
    owners = []
    for name in dict.fromkeys(metadata.packages_distributions().get("thop", [])):
        record = next((f for f in metadata.distribution(name).files or () if f.parts == ("thop", "__init__.py")), None)
        if record and Path(record.locate()).resolve() == origin and (record.hash is None or record.hash.value == digest):
            owners.append(name)
    return owners


def thop_trap(facts: dict) -> dict | None:
    """YOLOv5's and YOLOv9's requirements install PyPI's thop over ultralytics-thop: 8.4's get_flops then says 0."""
    import importlib.util

    wanted = facts["thop_distribution"]
    if not wanted or not version_at_least(facts["version"], facts["thop_distribution_since"]):
        return None
    spec = importlib.util.find_spec("thop")
    if spec is None or not spec.origin:
        return {"name": "thop", "message": "thop is not installed: the target reports 0 GFLOPs for every model",
                "fix": f"{sys.executable} -m pip install {wanted}"}
    owners = thop_owners(Path(spec.origin).resolve())
    if normalized(wanted) in map(normalized, owners):
        return None
    return {"name": "thop",
            "message": f"the thop Python imports ({Path(spec.origin).parent}) comes from "
                       f"{' and '.join(owners) or 'no installed distribution'}, not {wanted}: the target's get_flops "
                       "may report 0 GFLOPs for every model, stock ones included",
            "fix": f"{sys.executable} -m pip uninstall -y thop && "
                   f"{sys.executable} -m pip install --force-reinstall --no-deps {wanted}"}


def torchvision_trap() -> dict | None:
    """The targets import torchvision lazily: one built for another torch fails only when a model is built."""
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # RuntimeError: operator torchvision::nms does not exist
        return {"name": "torchvision", "message": f"torchvision does not import: {one_line(exc)}",
                "fix": hint_for(exc, "") or f"{sys.executable} -m pip install torchvision"}
    return None


def environment_traps(facts: dict, root: Path) -> list[dict]:
    """What breaks after a clean apply because of the environment (call once the checkout imports)."""
    return [trap for trap in (ddp_trap(facts, root), thop_trap(facts), torchvision_trap()) if trap]


# ------------------------------------------------------------------ modes


def import_torch(report: Report) -> bool:
    """torch, on at most two threads (the numbers verify and compare report are for that)."""
    try:
        import torch

        report.data["torch"] = torch.__version__
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    except Exception as exc:
        return report.check("import", "fail", f"torch does not import in {sys.executable}: {one_line(exc)}",
                            hint=f"{sys.executable} -m pip install torch torchvision")
    return True


def mode_verify(args, facts: dict) -> dict:
    root = Path(facts["root"]).resolve()
    report = Report(target={"kind": facts["kind"], "version": facts["version"], "root": str(root)}, yaml=args.yaml,
                    imgsz=args.imgsz, batch=args.batch, python=sys.executable, imported=None, gradients=None,
                    train=None)
    put_checkout_on_path(facts["path_entry"])
    if not import_torch(report):
        return report.data
    for trap in environment_traps(facts, root) if check_import(report, facts, root) else ():
        report.note(f"{trap['message']}; fix: {trap['fix']}")
    model, cfg_dict = build(report, facts, args.yaml, root) if report.data["imported"] is not None else (None, None)
    if model is not None and check_forward(report, model, args.imgsz, args.batch):
        check_flops(report, facts, model, args.imgsz)
        check_backward(report, facts, model, args.imgsz, args.batch)
    if args.train:
        check_train(report, facts, args.yaml, cfg_dict, args.imgsz, args.batch)
    report.data["ok"] = not report.failed()
    return report.data


def mode_predict(args, facts: dict) -> dict:
    put_checkout_on_path(facts["path_entry"])
    try:
        return {"boxes": predict_with_wrapper(facts["package"], args.wrapper, Path(args.weights), Path(args.image),
                                              args.imgsz)}
    except Exception as exc:
        return {"error": one_line(exc)}


def missing_requirements(requires: list[str]) -> list[dict]:
    """The requirements this Python lacks, or has at a version outside the specifier."""
    from importlib import metadata

    missing = []
    for requirement in requires:
        name = re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append({"requirement": requirement, "installed": None})
            continue
        try:
            from packaging.requirements import Requirement

            if not Requirement(requirement).specifier.contains(installed, prereleases=True):
                missing.append({"requirement": requirement, "installed": installed})
        except ImportError:  # without packaging, presence is all we can check
            pass
    return missing


def mode_environment(args, facts: dict) -> dict:
    """For doctor: the package this Python imports for the checkout, its environment traps, missing requirements."""
    root = Path(facts["root"]).resolve()
    put_checkout_on_path(facts["path_entry"])
    answer: dict = {"python": sys.executable, "imported": None, "import_error": None, "missing": []}
    try:
        answer["imported"] = imported_package(facts["package"], root)
    except Exception as exc:
        answer["import_error"] = one_line(exc)
        answer["import_fix"] = hint_for(exc, facts["package"])
    if answer["imported"] and answer["imported"]["inside_checkout"]:
        answer["traps"] = environment_traps(facts, root)
    answer["missing"] = missing_requirements(args.requires)
    return answer


MODES = {"verify": mode_verify, "predict": mode_predict, "environment": mode_environment}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=tuple(MODES), default="verify")
    parser.add_argument("--target", required=True, help="the facts JSON of yamlforge's Target.runner_facts")
    parser.add_argument("--yaml")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--weights")
    parser.add_argument("--image")
    parser.add_argument("--wrapper", default="YOLO")
    parser.add_argument("--requires", nargs="*", default=[])
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        facts = read_facts(args.target)
    except FactsError as exc:  # yamlforge and this file disagree: one line, and the same line as the JSON answer
        print(f"verify_runner: {exc}", file=sys.stderr)
        print(json.dumps({"schema": VERIFY_SCHEMA, "error": str(exc)}), flush=True)
        return 2
    print_one_json(lambda: MODES[args.mode](args, facts), VERIFY_SCHEMA)
    return 0


def print_one_json(compute, schema: str) -> None:
    """Print ``compute()``'s answer (or the crash) as the one JSON line on stdout; everything else goes to stderr."""
    # Targets print tables and progress bars on stdout; stdout must carry only our JSON.
    json_out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        answer = compute()
    except BaseException as exc:  # a bug here or in the target: still one JSON object, with the traceback
        traceback.print_exc()
        answer = {"schema": schema, "internal_error": "".join(traceback.format_exception(exc))[-4000:],
                  "error": one_line(exc)}
    json_out.write(json.dumps(answer, default=str) + "\n")
    json_out.flush()


if __name__ == "__main__":
    sys.exit(main())
