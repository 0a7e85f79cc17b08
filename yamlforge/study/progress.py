"""A study's progress while it trains, read from its folders: each running trial's epoch, metric and ETA.

Both engines write the same folders, so one watcher serves both: a trial is ``running`` in its ``trial.json`` and its
trainer appends a row to ``results.csv`` per epoch. On a terminal the lines are one live block, rewritten in place
(one line per running trial and a summary line); elsewhere each new epoch is one plain line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from .plan import Plan
from .trial import STATE_FILE, Trial, read_epochs

TICK_SECONDS = 2.0
UP_AND_CLEAR = "\x1b[{}F\x1b[J"  # cursor up n lines, erase to the end of the screen


def trial_line(trial: Trial, epochs: int, now: float, task: str | None = None) -> str | None:
    """``name  epoch k/N  METRIC m  ETA s`` for a running trial (``task``'s metric); None otherwise."""
    if trial.state()["status"] != "running":
        return None
    rows, (metric, _) = read_epochs(trial.results_csv, task)
    if not rows:
        return f"{trial.folder.name}  epoch 0/{epochs}"
    done = len(rows)
    spent = now - (trial.folder / STATE_FILE).stat().st_mtime  # trial.json is written when the trial starts
    eta = spent / done * max(epochs - done, 0)
    label = metric.removeprefix("metrics/")
    return f"{trial.folder.name}  epoch {done}/{epochs}  {label} {float(rows[-1][metric]):.4f}  ETA {eta:.0f} s"


def summary_line(trials: list[Trial]) -> str:
    statuses = [t.state()["status"] for t in trials]
    counts = {word: statuses.count(word) for word in ("done", "running", "failed")}
    return f"{counts['done']}/{len(trials)} trials done, {counts['running']} running, {counts['failed']} failed"


class Watcher:
    """Prints the progress of ``plan``'s trials in ``out`` every ``TICK_SECONDS`` from a thread, and the engines'
    own lines through ``say`` (which keeps a live block below them)."""

    def __init__(self, plan: Plan, out: Path, write: Callable[[str], None], *, live: bool):
        self.trials = [Trial.of(out, v, s) for v, s in plan.trials()]
        self.epochs, self.task, self.write, self.live = plan.hyper.epochs, plan.task, write, live
        self.shown: dict[str, str] = {}
        self.block = 0  # lines of the live block on screen
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="study-progress", daemon=True)

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:  # a live block stays on screen: the last summary
        self.stop.set()
        self.thread.join()

    def say(self, line: str) -> None:
        with self.lock:
            self.write(self._erase() + line)

    def tick(self, now: float) -> None:
        lines = {t.folder.name: line for t in self.trials if (line := trial_line(t, self.epochs, now, self.task))}
        with self.lock:
            if self.live:
                block = [*lines.values(), summary_line(self.trials)]
                self.write(self._erase() + "\n".join(block))
                self.block = len(block)
                return
            for name, line in lines.items():  # plain: a line per new epoch, none for the ETA ticking down
                if line.partition("  ETA")[0] != self.shown.get(name):
                    self.shown[name] = line.partition("  ETA")[0]
                    self.write(line)

    def _erase(self) -> str:
        """What to print first so the next lines replace the live block on screen."""
        erase, self.block = UP_AND_CLEAR.format(self.block) if self.block else "", 0
        return erase

    def _run(self) -> None:
        while not self.stop.wait(TICK_SECONDS):
            self.tick(time.time())
