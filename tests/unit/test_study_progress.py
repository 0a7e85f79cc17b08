"""The study's progress lines, read from trial folders written here the way a trainer writes them (no training)."""

from __future__ import annotations

from pathlib import Path

from yamlforge.study.plan import Hyper, Plan, Variant
from yamlforge.study.progress import Watcher, summary_line, trial_line
from yamlforge.study.trial import STATE_FILE, Trial

HEADER = "                   epoch,  metrics/mAP50(B),  metrics/mAP50-95(B)\n"  # Ultralytics pads the names


def make_plan(epochs: int = 4) -> Plan:
    variants = (Variant("base", (), "models/a.yaml"), Variant("SHSA-at6", ("--insert-after 6=SHSA",), "models/b.yaml"),
                Variant("SHSA-at40", ("--insert-after 40=SHSA",), None, "layer 40 does not exist"))
    return Plan("yolov8n", "/repo", "/data.yaml", "ultralytics 8.4.190", (0,), Hyper(epochs=epochs), variants)


def running(out: Path, variant: Variant, epochs: list[float], started: float) -> Trial:
    import os

    trial = Trial.of(out, variant, 0)
    trial.record("running", seconds=0.0)
    os.utime(trial.folder / STATE_FILE, (started, started))
    trial.results_csv.parent.mkdir(parents=True)
    trial.results_csv.write_text(HEADER + "".join(f"{n + 1}, 0.5, {m}\n" for n, m in enumerate(epochs)))
    return trial


def test_a_running_trial_says_its_epoch_metric_and_eta(tmp_path):
    plan = make_plan()
    trial = running(tmp_path, plan.variants[0], [0.1, 0.25], started=1000.0)
    assert trial_line(trial, 4, now=1020.0) == "base-s0  epoch 2/4  mAP50-95(B) 0.2500  ETA 20 s"


def test_a_trial_not_running_has_no_line_and_the_summary_counts(tmp_path):
    plan = make_plan()
    done = Trial.of(tmp_path, plan.variants[0], 0)
    done.record("done", seconds=3.0)
    other = Trial.of(tmp_path, plan.variants[1], 0)
    assert trial_line(done, 4, now=0.0) is None and trial_line(other, 4, now=0.0) is None
    assert summary_line([done, other]) == "1/2 trials done, 0 running, 0 failed"


def test_plain_lines_come_once_per_new_epoch(tmp_path):
    plan, lines = make_plan(), []
    trial = running(tmp_path, plan.variants[1], [0.1], started=1000.0)
    watcher = Watcher(plan, tmp_path, lines.append, live=False)
    watcher.tick(1010.0)
    watcher.tick(1015.0)  # the same epoch: nothing new
    trial.results_csv.write_text(trial.results_csv.read_text() + "2, 0.5, 0.2\n")
    watcher.tick(1020.0)
    watcher.say("[2/2] done     SHSA-at6-s0 (20 s)")
    assert lines == ["SHSA-at6-s0  epoch 1/4  mAP50-95(B) 0.1000  ETA 30 s",
                     "SHSA-at6-s0  epoch 2/4  mAP50-95(B) 0.2000  ETA 20 s", "[2/2] done     SHSA-at6-s0 (20 s)"]


def test_on_a_terminal_the_block_is_rewritten_in_place(tmp_path):
    plan, lines = make_plan(), []
    running(tmp_path, plan.variants[0], [0.1], started=1000.0)
    watcher = Watcher(plan, tmp_path, lines.append, live=True)
    watcher.tick(1010.0)
    watcher.say("[2/2] train    SHSA-at6-s0")
    assert lines == ["base-s0  epoch 1/4  mAP50-95(B) 0.1000  ETA 30 s\n0/2 trials done, 1 running, 0 failed",
                     "\x1b[2F\x1b[J[2/2] train    SHSA-at6-s0"]
