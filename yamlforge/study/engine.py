"""Running a study: the plan written (or found) in DIR, then each trial not yet finished, one after another.

An engine only decides where and when a trial runs; what a trial is (its folder, its runner, its state) is
``trial.py``'s, and the table is ``report.py``'s, read back from the folders. Resuming is the same run again: a
finished trial is skipped, an interrupted one resumes from its ``last.pt``, a failed one is retried only when asked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..check.compare import compare
from ..errors import YamlforgeError
from ..target_python import resolve_python
from ..targets import detect_target
from .plan import Plan, StudyRequest, make_plan, trial_name, write_carried_weights, write_plan
from .plots import draw_plots
from .report import MEASURED_FILE, StudyRow, study_rows
from .trial import Trial, next_step, run_trial

ENGINES = ("local",)


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise YamlforgeError(f"--engine {engine} is not one of {', '.join(ENGINES)}", where="--engine",
                             hint="--engine local runs the trials one after another on this machine")


def run_study(request: StudyRequest, *, engine: str = "local", retry_failed: bool = False, python: str | None = None,
              progress: Callable[[str], None] = lambda line: None) -> list[StudyRow]:
    """Plan (bad input raises before anything is written or trained), then train what is left; the table."""
    check_engine(engine)
    python = resolve_python(python)
    plan, texts = make_plan(request)
    out = request.out
    write_plan(plan, texts, out)
    for note in plan.notes:
        progress(note)
    for variant in plan.variants:
        if variant.refused is not None:
            progress(f"refused  {variant.name}: {variant.refused}")
    write_carried_weights(plan, out, python=python, progress=progress)
    measure_models(plan, out, python=python, progress=progress)
    run_local(plan, out, retry_failed=retry_failed, python=python, progress=progress)
    rows = study_rows(out, plan)
    written, why_not = draw_plots(rows, plan, out, python=python)
    for path in written:
        progress(f"create   {path}")
    if why_not:
        progress(f"note: no plots ({why_not})")
    return rows


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


def run_local(plan: Plan, out: Path, *, retry_failed: bool, python: str, progress: Callable[[str], None]) -> None:
    """Each trial in the plan's order, in this machine's target Python."""
    target = detect_target(plan.repo)
    trials = plan.trials()
    for number, (variant, seed) in enumerate(trials, 1):
        trial = Trial.of(out, variant, seed)
        name, state = trial_name(variant, seed), trial.state()
        counter = f"[{number}/{len(trials)}]"
        step = next_step(state, trial.last_checkpoint.is_file(), retry_failed=retry_failed)
        if step == "skip":
            progress(f"{counter} skip     {name} ({state['status']})")
            continue
        progress(f"{counter} {step:<8} {name}")
        try:
            state = run_trial(trial, plan, out, target, python=python, resume=step == "resume")
        except KeyboardInterrupt:  # the trainer got the Ctrl-C too; its last.pt is where the rerun starts
            progress(f"{counter} stopped  {name}: run the same command again to resume it")
            raise
        said = f"failed: {state['reason']}" if state["status"] == "failed" else "done"
        progress(f"{counter} {said:<8} {name} ({state['seconds']:.0f} s)")
