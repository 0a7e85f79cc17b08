"""Runs inside the target's Python: measures one model YAML for ``yamlforge compare`` and prints one JSON object.

``python compare_runner.py --mode compare --target FACTS --yaml Y --imgsz N --batch B`` builds the model the way
``verify`` does (``verify_runner.py``, imported as a sibling), then measures, in this order (with ``--usual-imgsz``
instead of ``--imgsz``, at the size the task's own trainer trains at by default: 224 for classification):

- peak memory of one training forward + backward at batch B: the growth of this process's peak resident set
  (``VmHWM``), reset to the current RSS just before through ``/proc/self/clear_refs``. torch's CPU allocator
  keeps no statistics and ``tracemalloc`` does not see its allocations, so RSS is what there is; it runs first,
  right after the build, in a process of its own, so nothing else has touched memory yet;
- layers, parameters and GFLOPs with verify's own checks (so the numbers are verify's);
- the median CPU latency of a batch-1 forward over ``--runs`` runs after ``WARMUP_RUNS`` warm-up runs.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import time
from pathlib import Path

if __package__:  # imported as yamlforge.runners.compare_runner (the tests)
    from . import export_runner, yf_checks, yf_facts, yf_wrappers
    from . import verify_runner as vr
else:  # a script in the target's Python: its own folder is sys.path[0]
    import export_runner
    import verify_runner as vr
    import yf_checks
    import yf_facts
    import yf_wrappers

WARMUP_RUNS = 2


class TrainerOverrides(Exception):  # noqa: N818 - not an error: it carries the overrides out of the __init__ chain
    """Raised in place of the trainers' base ``__init__``, with the overrides the task's trainer handed it."""


def trainer_overrides(trainer) -> dict:
    """What ``trainer(overrides={})`` hands its base class (the last one defining ``__init__``), which never runs:
    the defaults a task's trainer sets itself, such as ClassificationTrainer's ``imgsz`` 224."""
    base = [cls for cls in trainer.__mro__ if "__init__" in vars(cls) and cls is not object][-1]
    original = base.__init__

    def stop(self, cfg=None, overrides=None, *args, **kwargs):
        raise TrainerOverrides(dict(overrides or {}))

    base.__init__ = stop
    try:
        trainer(overrides={})
    except TrainerOverrides as exc:
        return exc.args[0]
    finally:
        base.__init__ = original
    return {}


def usual_imgsz(report, facts: dict, cfg: str, cfg_dict: dict) -> int:
    """The size the target trains the model's task at by default: its task's trainer's own ``imgsz`` (a
    classifier's 224), else the default hyperparameters' (640); targets without a task map train at 640."""
    default = getattr(yf_facts.load_callable(facts["loss_args"])(), "imgsz", 640) if facts["loss_args"] else 640
    task = (report.data.get("task") or {}).get("task")
    if task is None:
        return default
    try:
        trainer = (yf_wrappers.class_task_map(yf_wrappers.wrapper_class(facts, cfg, cfg_dict)) or {})[task]["trainer"]
        return int(trainer_overrides(trainer).get("imgsz") or default)
    except Exception as exc:  # a fork's trainer that does more than set defaults before its base class
        report.note(f"measured at {default}: the {task} trainer's own image size is unknown ({yf_facts.one_line(exc)})")
        return default


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (VmRSS: resident now, VmHWM: peak resident)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Make the kernel's peak-RSS counter start again from the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_memory(facts: dict, model, imgsz: int, batch: int) -> dict:
    """MiB the process's peak RSS grows by during one forward + backward of the target's training loss."""
    import resource  # POSIX only: imported here so the runner still loads on Windows

    model.train()
    x = yf_facts.random_images(batch, imgsz)
    gc.collect()
    if reset_peak_rss():
        method, before = "peak RSS delta (/proc/self/clear_refs reset)", status_kib("VmRSS")
    else:  # ru_maxrss only grows: a lower bound when something earlier peaked higher
        method, before = "ru_maxrss delta (a lower bound)", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loss, _ = yf_checks.LOSSES[facts["loss"]](facts, model, x)
    loss.backward()
    after = status_kib("VmHWM") if method.startswith("peak") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for p in model.parameters():
        p.grad = None
    return {"peak_mib": round((after - before) / 1024, 1), "memory_method": method, "memory_batch": batch}


def latency(model, imgsz: int, runs: int) -> dict:
    import torch

    model.eval()
    x = yf_facts.random_images(1, imgsz)
    times = []
    with torch.no_grad():
        for run in range(WARMUP_RUNS + runs):
            started = time.perf_counter()
            model(x)
            if run >= WARMUP_RUNS:
                times.append(time.perf_counter() - started)
    return {"latency_ms": round(statistics.median(times) * 1000, 2), "latency_runs": runs}


def measure(report, facts: dict, model, imgsz: int, batch: int, runs: int) -> None:
    """Memory first (nothing has run yet), then verify's forward + GFLOPs checks, then latency."""
    try:
        measured = peak_memory(facts, model, imgsz, batch)
    except Exception as exc:
        yf_facts.fail_at_layer(report, "backward", exc, "training forward/backward failed")
        return
    if yf_checks.check_forward(report, model, imgsz, 1) and yf_checks.check_flops(report, facts, model, imgsz):
        measured.update(latency(model, imgsz, runs))
    report.data["totals"].update(measured)


def mode_compare(args, facts: dict, runs: int, usual: bool = False) -> dict:
    report, model, cfg_dict = export_runner.open_model(args, facts)
    if model is not None and usual:
        args.imgsz = report.data["imgsz"] = usual_imgsz(report, facts, args.yaml, cfg_dict)
    if model is not None:
        measure(report, facts, model, args.imgsz, args.batch, runs)
    report.data["ok"] = not report.failed()
    return report.data


def main() -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", type=int, default=10)  # timed forwards; the rest is verify_runner's command line
    parser.add_argument("--usual-imgsz", action="store_true")  # the task's own training size, not --imgsz
    own, rest = parser.parse_known_args()
    return vr.main(rest, {"compare": functools.partial(mode_compare, runs=own.runs, usual=own.usual_imgsz)})


if __name__ == "__main__":
    sys.exit(main())
