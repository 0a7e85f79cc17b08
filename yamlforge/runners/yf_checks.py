"""Runs inside the target's Python: a built model's forward pass, GFLOPs and one backward pass, as checks."""

from __future__ import annotations

import contextlib
import copy
import sys
import time

if __package__:  # imported as yamlforge.runners.yf_checks (the tests)
    from . import yf_facts, yf_scripts, yf_tasks, yf_train, yf_traps
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts
    import yf_scripts
    import yf_tasks
    import yf_train
    import yf_traps


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
        row["shape"] = yf_facts.shape_of(out_i)
        if isinstance(out_i, torch.Tensor) and out_i.dim() == 4 and out_i.shape[-1]:
            stride = imgsz / out_i.shape[-1]
            row["stride"] = int(stride) if stride == int(stride) else round(stride, 3)


def check_forward(report: yf_facts.Report, model, imgsz: int, batch: int) -> bool:
    import torch

    rows = layer_rows(model)
    report.data["layers"] = rows
    outputs: dict[int, object] = {}
    handles = [layer.register_forward_hook(lambda mod, inp, out, i=i: outputs.__setitem__(i, out))
               for i, layer in enumerate(model.model)]
    x = yf_facts.random_images(batch, imgsz)
    model.eval()
    try:
        with torch.no_grad():
            started = time.perf_counter()
            out = model(x)
            elapsed = time.perf_counter() - started
    except Exception as exc:
        return yf_facts.fail_at_layer(report, "forward", exc, f"forward pass at {imgsz}x{imgsz} failed")
    finally:
        for handle in handles:
            handle.remove()
    fill_shapes(rows, outputs, imgsz)
    totals = report.data["totals"]
    totals["layers"] = len(rows)
    totals["parameters"] = int(sum(p.numel() for p in model.parameters()))
    totals["forward_ms"] = round(elapsed * 1000, 1)
    for i, row in enumerate(rows):
        bad = [t for t in yf_facts.tensors(outputs.get(i)) if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:
            return report.check("forward", "fail", f"layer {row['index']} ({row['module']}) outputs NaN/Inf",
                                layer={"index": row["index"], "module": row["module"]})
    if not any(True for _ in yf_facts.tensors(out)):
        return report.check("forward", "fail", "the model's forward returned no tensor")
    report.data["constant_layer"] = constant_layer(rows, outputs, x)
    return report.check("forward", "pass",
                        f"{len(rows)} layers, batch {batch} at {imgsz}x{imgsz}: {elapsed * 1000:.0f} ms on CPU")


def constant_value(obj) -> float | None:
    """The one value every floating element of ``obj`` holds (all zeros, typically), or None if they vary."""
    floats = [t for t in yf_facts.tensors(obj) if t.is_floating_point() and t.numel() > 1]
    if not floats or any(bool(t.max() != t.min()) for t in floats):
        return None
    return float(floats[0].flatten()[0])


def constant_layer(rows: list[dict], outputs: dict, images) -> dict | None:
    """The first layer whose output is one constant while its input varies, at initialisation (eval mode, random
    images): it cuts the signal, so every later layer starts from nothing. The usual cause is a residual branch used
    as a plain layer: its last normalisation starts at weight 0 (SHSA's projection BN), meant for ``x + f(x)``."""
    for i, row in enumerate(rows):
        froms = row["from"] if isinstance(row["from"], list) else [row["from"]]
        inputs = [images if i == 0 else outputs.get(i + f if f < 0 else f) for f in froms]
        value = constant_value(outputs.get(i))
        if value is not None and any(constant_value(x) is None for x in inputs if x is not None):
            return {"index": row["index"], "module": row["module"], "value": value}
    return None


def constant_cause(layer: dict) -> tuple[str, str]:
    """What a constant layer does to the model, and the hint that fixes it (the residual form gen-yaml writes)."""
    value = "all zeros" if layer["value"] == 0 else f"the constant {layer['value']:g}"
    return (f"layer {layer['index']} ({layer['module']}) outputs {value} at initialisation (its input varies), so "
            "every layer after it sees a constant",
            f"if {layer['module']} is a residual branch (its last norm starts at 0, as SHSA's), use its residual form "
            f"x + f(x): yamlforge gen-yaml BASE --insert-after N=residual:{layer['module']}")


def first_undeepcopyable_layer(model):
    for layer in model.model:
        try:
            copy.deepcopy(layer)
        except Exception as exc:
            return {"index": int(getattr(layer, "i", -1)), "module": type(layer).__name__}, exc
    return None, None


def deepcopy_or_culprit(model):
    """(None, None, a deep copy of ``model``), or (the first layer that cannot be deep-copied, its error, ``model``)."""
    try:
        return None, None, copy.deepcopy(model)
    except Exception:
        return (*first_undeepcopyable_layer(model), model)


def check_flops(report: yf_facts.Report, facts: dict, model, imgsz: int) -> bool:
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
            totals["target_gflops"] = round(float(yf_facts.load_callable(facts["flops_function"])(model, imgsz)), 3)
    layer, deepcopy_error, profiled = deepcopy_or_culprit(model)
    x = torch.zeros(1, 3, imgsz, imgsz)
    model.eval()
    try:
        macs = thop.profile(profiled, inputs=(x,), verbose=False)[0]
        gflops = macs * 2 / 1e9
    except Exception as exc:
        return report.check("flops", "fail", f"thop could not profile the model at {imgsz}: {yf_facts.one_line(exc)}; "
                            "the target prints GFLOPs 0", where=yf_facts.where_in_traceback(exc),
                            layer=yf_facts.failing_layer(exc))
    totals["gflops"] = round(gflops, 3)
    if deepcopy_error is not None:
        return report.check(
            "flops", "fail",
            f"layer {layer['index']} ({layer['module']}) cannot be deep-copied "
            f"({yf_facts.one_line(deepcopy_error)}): "
            + ("the target prints GFLOPs 0 (it profiles a deepcopy) and " if totals["target_gflops"] == 0 else "")
            + "training's EMA copy fails",
            hint="keep derived tensors out of module attributes: compute them in forward() or register_buffer() "
                 "them from a detached value", layer=layer)
    cause = yf_traps.thop_trap(facts) if 0 in (gflops, totals["target_gflops"]) else None
    if cause:
        report.note(f"{cause['message']}; fix: {cause['fix']}")
    return flops_verdict(report, gflops, totals["target_gflops"], imgsz, cause)


def flops_verdict(report: yf_facts.Report, gflops: float, target_gflops: float | None, imgsz: int,
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


def summed_outputs(facts: dict, model, x):
    """The loss of targets whose detection loss needs a trainer's state: every floating output's mean, summed."""
    out = model(x)
    parts = [t.float().mean() for t in yf_facts.tensors(out) if t.is_floating_point() and t.requires_grad]
    return (sum(parts) if parts else None), "the summed outputs"


def model_loss(facts: dict, model, x):
    """The model's own loss for its task (``model.task``, set by the target's wrapper), built by its
    ``init_criterion``, on a batch in that task's format (self-contained once it has the default hyperparameters
    and ``nc``)."""
    if not hasattr(model, "loss"):
        return summed_outputs(facts, model, x)
    if not hasattr(getattr(model, "args", None), "box"):  # a bare build keeps args as a dict
        model.args = yf_facts.load_callable(facts["loss_args"])()
    if not hasattr(model, "nc"):  # the trainer sets it from the dataset; the head knows it too
        model.nc = getattr(model.model[-1], "nc", None) or model.yaml.get("nc")
    task = getattr(model, "task", None) or "detect"  # a model class built without the wrapper
    batch = yf_tasks.to_tensors(yf_tasks.task_batch(task, x.shape[0], x.shape[-1], yf_tasks.model_shapes(model)))
    loss = model.loss({"img": x, **yf_tasks.stored_embeddings(model, x.shape[0]), **batch})[0]
    return loss.sum(), f"the target's {task} loss ({type(getattr(model, 'criterion', None)).__name__})"


def script_loss(facts: dict, model, x):
    """The loss the model's training script imports (:func:`yf_scripts.task_loss`); the summed outputs where the
    facts name none for that script."""
    hyp = yf_train.script_hyperparameters(facts)
    return yf_scripts.task_loss(facts, model, x, hyp) or summed_outputs(facts, model, x)


LOSSES = {"model_loss": model_loss, "summed_outputs": summed_outputs, "script_loss": script_loss}


def watch_gradients(model) -> tuple[dict[int, bool], list]:
    """Hooks recording, per layer, whether every gradient reaching its outputs is finite; returns (record, handles)."""
    import torch

    finite_out: dict[int, bool] = {}

    def watch(i):
        def hook(mod, inp, out):
            for t in yf_facts.tensors(out):
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


def check_backward(report: yf_facts.Report, facts: dict, model, imgsz: int, batch: int) -> bool:
    """One backward pass: every gradient finite (else: the first bad parameter and the layer it starts at)."""
    import torch

    finite_out, handles = watch_gradients(model)
    model.train()
    for p in model.parameters():
        p.grad = None
    try:
        loss, what = LOSSES[facts["loss"]](facts, model, yf_facts.random_images(batch, imgsz))
        if loss is None:
            return report.check("backward", "fail", "no model output depends on a trainable parameter")
        loss.backward()
    except Exception as exc:
        return yf_facts.fail_at_layer(report, "backward", exc, "training forward/backward failed")
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
        gradients["source_layer"] = nonfinite_source(model, finite_out)
    return backward_verdict(report, gradients, report.data.get("constant_layer"))


def backward_verdict(report: yf_facts.Report, gradients: dict, constant: dict | None) -> bool:
    """Pass, or fail at the parameter and layer where NaN/Inf starts. A layer with a constant output at
    initialisation (:func:`constant_layer`) is named as the cause of NaN/Inf gradients (a failure) and, with finite
    gradients, as a dead start (a warning: the model trains, from a signal cut at that layer)."""
    what, no_grad, source = gradients["loss"], gradients["no_grad"], gradients["source_layer"]
    cause, hint = constant_cause(constant) if constant else (None, None)
    dead = {"index": constant["index"], "module": constant["module"]} if constant else None
    if not gradients["finite"]:
        at = f"; the NaN/Inf starts at layer {source['index']} ({source['module']})" if source else ""
        because = f"; the cause: {cause}" if cause else ""
        return report.check("backward", "fail", f"{gradients['nonfinite_count']} parameters get NaN/Inf gradients "
                            f"from {what}, first {gradients['first_nonfinite']}{at}{because}", hint=hint,
                            layer=dead or source)
    extra = f"; {len(no_grad)} parameters got no gradient" if no_grad else ""
    if cause:
        return report.check("backward", "warn", f"all gradients of {what} finite{extra}, but {cause} (a dead start; "
                            f"fix: {hint})", hint=hint, layer=dead)
    return report.check("backward", "pass", f"all gradients of {what} finite{extra}")
