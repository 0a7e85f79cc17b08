"""Running a study: the plan written (or found) in DIR, then each trial not yet finished, one after another.

An engine only decides where and when a trial runs; what a trial is (its folder, its runner, its state) is
``trial.py``'s, and the table is ``report.py``'s, read back from the folders. Resuming is the same run again: a
finished trial is skipped, an interrupted one resumes from its ``last.pt``, a failed one is retried only when asked.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..check.compare import compare
from ..errors import YamlforgeError
from ..target_python import resolve_python
from ..targets import detect_target
from .plan import Plan, StudyRequest, make_plan, write_carried_weights, write_plan
from .plots import draw_plots
from .progress import Watcher
from .report import MEASURED_FILE, StudyRow, study_rows
from .trial import Trial, next_step, run_trial

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Engine:
    """Where the trials run: ``local`` (this machine, one at a time, or one per device of ``devices`` at once) or
    ``ray`` (Ray Tune trials on the cluster at ``address``, with these resources each; fractions allowed)."""

    name: str = "local"
    devices: tuple[str, ...] = ()
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


def check_engine(engine: Engine) -> None:
    """An engine that exists and can run here (ray installed), with resources it can grant."""
    if engine.name not in ENGINES:
        raise YamlforgeError(f"--engine {engine.name} is not one of {', '.join(ENGINES)}", where="--engine",
                             hint="--engine local runs the trials on this machine, --engine ray on a Ray cluster")
    if engine.name == "ray" and importlib.util.find_spec("ray") is None:
        raise YamlforgeError("--engine ray needs Ray, which is not installed in yamlforge's Python", where="--engine",
                             hint="pip install 'yamlforge[ray]'")
    if engine.name == "ray" and engine.devices:
        raise YamlforgeError("--devices is the local engine's: on Ray, --gpus-per-trial gives each trial its GPUs",
                             where="--devices")
    if engine.name == "local" and engine.address is not None:
        raise YamlforgeError("--address is the Ray engine's", where="--address", hint="add --engine ray")
    if engine.cpus_per_trial <= 0 or engine.gpus_per_trial < 0:
        raise YamlforgeError("--cpus-per-trial must be above 0 and --gpus-per-trial at least 0",
                             where="--cpus-per-trial")


def run_study(request: StudyRequest, *, engine: Engine = Engine(), retry_failed: bool = False,
              python: str | None = None, progress: Callable[[str], None] = lambda line: None) -> list[StudyRow]:
    """Plan (bad input raises before anything is written or trained), then train what is left; the table."""
    check_engine(engine)
    python = resolve_python(python)
    plan, texts = make_plan(request)
    if engine.name == "ray":
        from .ray_engine import connect

        connect(engine.address)
    out = request.out
    write_plan(plan, texts, out)
    for note in plan.notes:
        progress(note)
    for variant in plan.variants:
        if variant.refused is not None:
            progress(f"refused  {variant.name}: {variant.refused}")
    write_carried_weights(plan, out, python=python, progress=progress)
    # compare's parameters and GFLOPs (one process of the target's Python) beside the trials, not before them
    with ThreadPoolExecutor(max_workers=1) as aside, Watcher(plan, out, progress, live=sys.stderr.isatty()) as watcher:
        measured = aside.submit(measure_models, plan, out, python=python, progress=watcher.say)
        run_trials(plan, out, engine, retry_failed=retry_failed, python=python, progress=watcher.say)
        measured.result()
    rows = study_rows(out, plan)
    written, why_not = draw_plots(rows, plan, out, python=python)
    for path in written:
        progress(f"create   {path}")
    if why_not:
        progress(f"note: no plots ({why_not})")
    return rows


def run_trials(plan: Plan, out: Path, engine: Engine, *, retry_failed: bool, python: str,
               progress: Callable[[str], None]) -> None:
    if engine.name == "ray":
        from .ray_engine import run_ray

        run_ray(plan, out, retry_failed=retry_failed, python=python, progress=progress,
                cpus_per_trial=engine.cpus_per_trial, gpus_per_trial=engine.gpus_per_trial)
    else:
        run_local(plan, out, retry_failed=retry_failed, python=python, progress=progress, devices=engine.devices)


def measure_models(plan: Plan, out: Path, *, python: str, progress: Callable[[str], None]) -> None:
    """Parameters and GFLOPs at the study's image size of every row's model, by ``compare``, once per study."""
    path = out / MEASURED_FILE
    if path.is_file():
        return
    variants = [v for v in plan.variants if v.yaml is not None]
    rows = compare([out / v.yaml for v in variants], detect_target(plan.repo), imgsz=plan.hyper.imgsz, runs=1,
                   python=python, progress=progress)
    measured = {v.name: {"parameters": m.parameters, "gflops": m.gflops, "error": m.error}
                for v, m in zip(variants, rows)}
    path.write_text(json.dumps(measured, indent=2) + "\n", encoding="utf-8")


def run_local(plan: Plan, out: Path, *, retry_failed: bool, python: str, progress: Callable[[str], None],
              devices: tuple[str, ...] = ()) -> None:
    """Each trial in the plan's order, in this machine's target Python: one after another, or with ``devices``,
    one trial on each device at once."""
    target = detect_target(plan.repo)
    trials = plan.trials()
    todo = []
    for number, (variant, seed) in enumerate(trials, 1):
        trial = Trial.of(out, variant, seed)
        counter = f"[{number}/{len(trials)}]"
        step = next_step(trial.state(), trial.last_checkpoint.is_file(), retry_failed=retry_failed)
        if step == "skip":
            progress(f"{counter} skip     {trial.folder.name} ({trial.state()['status']})")
        else:
            todo.append((counter, trial, step))

    def train(counter: str, trial: Trial, step: str, runs: Callable = run_trial) -> None:
        progress(f"{counter} {step:<8} {trial.folder.name}")
        try:
            state = runs(trial, plan, out, target, python=python, resume=step == "resume")
        except KeyboardInterrupt:  # the trainer got the Ctrl-C too; its last.pt is where the rerun starts
            progress(f"{counter} stopped  {trial.folder.name}: run the same command again to resume it")
            raise
        said = f"failed: {state['reason']}" if state["status"] == "failed" else "done"
        progress(f"{counter} {said:<8} {trial.folder.name} ({state['seconds']:.0f} s)")

    if devices:
        on_devices(todo, devices, train)
    else:
        for counter, trial, step in todo:
            train(counter, trial, step)


def on_devices(todo: list[tuple], devices: tuple[str, ...], train: Callable, *, work: Callable = run_trial) -> None:
    """Each device's thread gives ``train`` the next trial of ``todo`` until none is left, and runs its ``work`` in
    a process of its own that sees only that device (``CUDA_VISIBLE_DEVICES``): the trainer's default device."""
    left, lock = list(todo), threading.Lock()

    def serve(device: str) -> None:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn, initializer=see_only, initargs=(device,)) as pool:
            while True:
                with lock:
                    if not left:
                        return
                    counter, trial, step = left.pop(0)
                train(f"{counter} (device {device})", trial, step,
                      lambda *args, **kwargs: pool.submit(work, *args, **kwargs).result())

    with ThreadPoolExecutor(len(devices), thread_name_prefix="device") as threads:
        for served in [threads.submit(serve, device) for device in devices]:
            served.result()  # a device's failure (not a trial's: those are failed rows) is the study's


def see_only(device: str) -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = device
