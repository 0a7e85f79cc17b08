"""One trial: a (variant, seed) trained in its own folder by the target's trainer, and what that folder says.

``DIR/trials/<variant>-s<seed>/`` holds ``trial.json`` (its config and state: running, done, failed with a reason,
its wall time), ``train.log`` (the trainer's output) and ``train/``, the trainer's own output folder
(``results.csv``, ``weights/last.pt``). Every number a study reports is read from that ``results.csv``.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..target_python import RUNNERS, run_runner
from ..targets import Target
from .plan import Hyper, Plan, Variant, trial_name
from .tasks import metric_columns

RUNNER = RUNNERS / "train_runner.py"
STATE_FILE = "trial.json"
SAVE_DIR = "train"
TIMEOUT = 7 * 24 * 3600  # a training may take days; a hung one is the user's to stop (Ctrl-C, then rerun)
EPOCH = "epoch"  # the other columns a study reads are its task's (tasks.METRIC_COLUMNS)


@dataclass(frozen=True)
class Trial:
    variant: Variant
    seed: int
    folder: Path

    @classmethod
    def of(cls, out: Path, variant: Variant, seed: int) -> Trial:
        return cls(variant, seed, out / "trials" / trial_name(variant, seed))

    @property
    def results_csv(self) -> Path:
        return self.folder / SAVE_DIR / "results.csv"

    @property
    def last_checkpoint(self) -> Path:
        return self.folder / SAVE_DIR / "weights" / "last.pt"

    def state(self) -> dict:
        """``{"status": "pending" | "running" | "done" | "failed", "reason", "seconds"}`` from ``trial.json``."""
        try:
            return json.loads((self.folder / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"status": "pending"}

    def record(self, status: str, **details) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {"variant": self.variant.name, "seed": self.seed, "status": status, **details}
        (self.folder / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class TrialResult:
    """What a trial's ``results.csv`` says: the metric and mAP50 of its best epoch (by the metric), and how far it
    got. Values are the trainer's own, as written."""

    metric: float
    map50: float
    best_epoch: int
    epochs: int


def read_epochs(path: Path, task: str | None) -> tuple[list[dict[str, str]], tuple[str, str]]:
    """The rows of the trainer's ``results.csv`` that have ``task``'s metric, as the trainer wrote them (names and
    values stripped: older releases and the train.py scripts pad them with spaces), and its (metric, mAP50)
    columns."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = [{key.strip(): (value or "").strip() for key, value in row.items() if key}
                    for row in csv.DictReader(f)]
    except OSError:
        return [], ("", "")
    columns = metric_columns(task, list(rows[0]) if rows else [])
    if columns is None:
        return [], ("", "")
    return [row for row in rows if row.get(columns[0])], columns


def read_curve(path: Path, task: str | None) -> dict[str, list]:
    """``{"epochs": [...], "values": [...]}``: the validation metric of each epoch in ``results.csv``."""
    rows, (metric, _) = read_epochs(path, task)
    return {"epochs": [int(float(row[EPOCH])) for row in rows], "values": [float(row[metric]) for row in rows]}


def read_results(path: Path, task: str | None) -> TrialResult | None:
    """The trainer's ``results.csv`` read back (None when it has no epoch yet)."""
    rows, (metric, map50) = read_epochs(path, task)
    if not rows:
        return None
    best = max(rows, key=lambda row: _number(row[metric]))  # the first of equal ones: the earliest epoch
    return TrialResult(float(best[metric]), float(best[map50]), int(float(best[EPOCH])), len(rows))


def _number(text: str) -> float:
    value = float(text)
    return -math.inf if math.isnan(value) else value


def next_step(state: dict, checkpoint: bool, *, retry_failed: bool) -> str:
    """What a run of the study does with a trial in ``state``: ``skip`` it (done; failed, unless retried), ``resume``
    it (interrupted, with a ``checkpoint``) or ``train`` it from the start."""
    status = state["status"]
    if status == "done" or (status == "failed" and not retry_failed):
        return "skip"
    return "resume" if status == "running" and checkpoint else "train"


def run_trial(trial: Trial, plan: Plan, out: Path, target: Target, *, python: str, resume: bool) -> dict:
    """Train ``trial`` (with ``resume``, from its ``last.pt``); record and return its state. A crash, a NaN metric or
    no results is a failed trial, never an exception."""
    previous = trial.state()
    finished = read_results(trial.results_csv, plan.task) if resume else None
    if finished is not None and finished.epochs >= plan.hyper.epochs:  # it ended while no driver was watching
        trial.record("done", seconds=previous.get("seconds", 0.0), resumed=False)
        return trial.state()
    if not resume:
        shutil.rmtree(trial.folder / SAVE_DIR, ignore_errors=True)
    spent = previous.get("seconds", 0.0) if resume else 0.0
    trial.record("running", yaml=trial.variant.yaml, seconds=spent)
    started = time.perf_counter()
    answer = run_runner(RUNNER, runner_args(trial, plan, out, resume=resume), python=python, timeout=TIMEOUT,
                        target=target, workdir=trial.folder)
    seconds = round(spent + time.perf_counter() - started, 1)
    (trial.folder / "train.log").write_text(answer.stderr, encoding="utf-8")
    reason = failure(answer, read_results(trial.results_csv, plan.task))
    said = answer.data or {}
    resumed = {"resumed": bool(said.get("resumed")), "restarted": said.get("restarted")}
    if reason:
        trial.record("failed", reason=reason, seconds=seconds, **resumed)
    else:
        trial.record("done", seconds=seconds, **resumed)
    return trial.state()


def runner_args(trial: Trial, plan: Plan, out: Path, *, resume: bool) -> list[str]:
    hyper: Hyper = plan.hyper
    args = ["--yaml", str((out / trial.variant.yaml).resolve()), "--data", plan.data,
            "--save-dir", str((trial.folder / SAVE_DIR).resolve()), "--epochs", str(hyper.epochs),
            "--imgsz", str(hyper.imgsz), "--batch", str(hyper.batch), "--seed", str(trial.seed)]
    if hyper.workers is not None:
        args += ["--workers", str(hyper.workers)]
    if hyper.options:
        args += ["--options", json.dumps(hyper.options)]
    if trial.variant.weights is not None:  # --base-weights: the base's checkpoint, or the one carried into the variant
        args += ["--pretrained", str((out / trial.variant.weights).resolve())]
    return args + (["--deterministic"] if hyper.deterministic else []) + (["--resume"] if resume else [])


def failure(answer, result: TrialResult | None) -> str | None:
    """Why a finished runner's trial failed, in one line, or None."""
    if not answer.ok:
        return answer.reason(1) if answer.data is not None else f"no answer: {answer.tail(1, empty='no output')}"
    if answer.data.get("failed"):
        return answer.data["failed"]
    if result is None:
        return "the trainer wrote no results.csv epoch"
    if math.isnan(result.metric):
        return "the metric is NaN (the training diverged)"
    return None
