"""The Ray engine: each trial of a study a Ray Tune trial, on an existing cluster or a local one.

The ``Tuner`` owns scheduling, resources (``tune.with_resources``), node failures (``FailureConfig``) and restore;
this module adds no queue or retry loop beside it. A trial is ``trial.run_trial`` in a function trainable, so the
folders are the local engine's. Each driver run is one Tune experiment in ``DIR/ray/run-<n>`` (``RunConfig``'s
``storage_path``: on a multi-node cluster, DIR is on a filesystem every node shares). A run that ends writes
``finished`` there; a run without it (a killed driver) is restored with ``Tuner.restore`` by the next one, which
resumes its unfinished trials, each from its own ``last.pt``.

Imported only when ``--engine ray`` is used: ray is an extra (``pip install 'yamlforge[ray]'``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import ray
from ray import tune

from ..errors import YamlforgeError
from ..targets import detect_target
from .plan import Plan, read_plan, trial_name
from .trial import Trial, next_step, run_trial

RUNS = "ray"  # DIR/ray/run-<n>: one Tune experiment per driver run
FINISHED = "finished"
PROBE_SECONDS = 5
MAX_FAILURES = 3  # Tune restarts a trial whose worker or node died (the trial resumes from its last.pt)


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` (``auto``, ``HOST:PORT``; None: ``RAY_ADDRESS``, the cluster ``ray start``
    started on this machine, else a new local one), before anything is trained."""
    if ray.is_initialized():
        return
    given = address or os.environ.get("RAY_ADDRESS")
    if given and given != "auto" and not given.startswith("ray://"):
        check_reachable(given)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise YamlforgeError(f"cannot reach the Ray cluster at {address}: {said}", where="--address",
                             hint="start one with `ray start --head`, or leave --address out to start a local one"
                             ) from None


def check_reachable(address: str) -> None:
    """A ``HOST:PORT`` that does not answer is an error now: ``ray.init`` would retry it for minutes."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=PROBE_SECONDS).close()
    except ValueError:
        raise YamlforgeError(f"--address {address} is not auto or HOST:PORT", where="--address") from None
    except OSError as exc:
        raise YamlforgeError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}", where="--address",
                             hint="start one with `ray start --head`, or leave --address out to start a local one"
                             ) from None


def train_trial(config: dict, *, out: str, python: str, retry_failed: bool) -> None:
    """Tune's trainable: the trial ``config["trial"]`` of the study in ``out``, trained (or skipped) as the local
    engine would; it reports the trial's status once."""
    plan = read_plan(Path(out))
    variant, seed = next((v, s) for v, s in plan.trials() if trial_name(v, s) == config["trial"])
    trial = Trial.of(Path(out), variant, seed)
    state = trial.state()
    step = next_step(state, trial.last_checkpoint.is_file(), retry_failed=retry_failed)
    if step != "skip":
        state = run_trial(trial, plan, Path(out), detect_target(plan.repo), python=python, resume=step == "resume")
    tune.report({"status": state["status"], "seconds": state.get("seconds", 0.0)})


def run_ray(plan: Plan, out: Path, *, retry_failed: bool, python: str, progress: Callable[[str], None],
            cpus_per_trial: float, gpus_per_trial: float) -> None:
    """The trials of ``plan`` not finished yet, as Tune trials, with these resources each."""
    out = out.resolve()
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, out=str(out), python=python, retry_failed=retry_failed),
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    runs = out / RUNS
    latest = max(runs.glob("run-*"), key=_run_number, default=None) if runs.is_dir() else None
    if latest is not None and not (latest / FINISHED).exists() and tune.Tuner.can_restore(latest):
        progress(f"restore  {RUNS}/{latest.name} (its driver stopped before the end)")
        tuner, experiment = tune.Tuner.restore(str(latest), trainable, restart_errored=True), latest
    else:
        todo = []
        for variant, seed in plan.trials():
            trial = Trial.of(out, variant, seed)
            if next_step(trial.state(), trial.last_checkpoint.is_file(), retry_failed=retry_failed) == "skip":
                progress(f"skip     {trial_name(variant, seed)} ({trial.state()['status']})")
            else:
                todo.append(trial_name(variant, seed))
        if not todo:
            return
        experiment = runs / f"run-{_run_number(latest) + 1 if latest is not None else 1}"
        tuner = tune.Tuner(trainable, param_space={"trial": tune.grid_search(todo)}, run_config=tune.RunConfig(
            name=experiment.name, storage_path=str(runs), verbose=0,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES)))
        progress(f"start    {RUNS}/{experiment.name}: {len(todo)} trials, {cpus_per_trial:g} CPU "
                 f"{gpus_per_trial:g} GPU each")
    with contextlib.redirect_stdout(sys.stderr):  # Tune's own report; stdout is the table's
        grid = tuner.fit()
    record_errors(grid, plan, out)
    (experiment / FINISHED).write_text("", encoding="utf-8")


def record_errors(grid, plan: Plan, out: Path) -> None:
    """A Tune trial that failed past ``MAX_FAILURES`` (its worker kept dying) is a failed row, with Ray's reason."""
    trials = {trial_name(v, s): Trial.of(out, v, s) for v, s in plan.trials()}
    for result in grid:
        trial = trials.get((result.config or {}).get("trial"))
        if result.error is None or trial is None or trial.state()["status"] == "done":
            continue
        said = str(result.error).strip().splitlines()
        trial.record("failed", reason=f"ray: {said[-1] if said else type(result.error).__name__}",
                     seconds=trial.state().get("seconds", 0.0))


def _run_number(path: Path) -> int:
    return int(path.name.partition("-")[2] or 0) if path.name.partition("-")[2].isdigit() else 0
