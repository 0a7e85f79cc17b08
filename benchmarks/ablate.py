"""Times `yamlforge ablate` against the same trainings run alone by the trainer, in the same run.

Run: .venv/bin/python benchmarks/ablate.py [EPOCHS]   (prints each side and the ratios)

The study is yolov8n and SHSA after layer 6 (two trials) on 8.4.190 and the tests' synthetic shapes dataset at 64 px.
"Alone" is each trial's trainer started by itself, the way a user would run it (the train runner in a fresh process:
the target's Python, `YOLO(yaml).train(...)` with the study's options), one after another; its sum is the floor of
a sequential study. The local engine must stay within 1.05x that sum + 3 s per trial (planning, compare's
parameters and GFLOPs, plots). The Ray engine runs on a local two-CPU cluster started here, two 1-CPU trials at
once: its ratio to the sequential sum says what running trials side by side gains on this machine (under 1 is a
gain; a 2-core machine with torch on one thread per trial should approach 0.5 + the cluster's start-up).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "lib"))

from shapes_dataset import shapes_dataset  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from yamlforge.cli import app  # noqa: E402
from yamlforge.scratch import make_checkout  # noqa: E402
from yamlforge.study.plan import read_plan  # noqa: E402
from yamlforge.study.trial import RUNNER, Trial, runner_args  # noqa: E402
from yamlforge.target_python import run_runner  # noqa: E402
from yamlforge.targets import detect_target  # noqa: E402

EPOCHS = 3
PER_TRIAL = 3.0  # seconds a study may add to each trial


def study(root: Path, data: Path, out: Path, epochs: int, *extra: str) -> float:
    """Wall time of the whole `yamlforge ablate` command in its own process."""
    command = [sys.executable, "-m", "yamlforge", "ablate", "yolov8n", "--repo", str(root), "--data", str(data),
               "--module", "SHSA", "--at", "6", "--epochs", str(epochs), "--imgsz", "64", "--batch", "8",
               "--workers", "0", "-o", str(out), *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def alone(study_dir: Path, scratch: Path) -> list[float]:
    """Each trial of the study in ``study_dir`` trained again by itself into ``scratch``: its wall times."""
    plan = read_plan(study_dir)
    target = detect_target(plan.repo)
    times = []
    for variant, seed in plan.trials():
        trial = Trial(variant, seed, scratch / f"{variant.name}-s{seed}")
        trial.folder.mkdir(parents=True)
        start = time.perf_counter()
        answer = run_runner(RUNNER, runner_args(trial, plan, study_dir, resume=False), python=sys.executable,
                            timeout=3600, target=target, workdir=trial.folder)
        times.append(time.perf_counter() - start)
        assert answer.ok and not answer.data.get("failed"), answer.stderr[-2000:]
    return times


def main(epochs: int) -> None:
    import ray

    with tempfile.TemporaryDirectory(prefix="yamlforge-bench-ablate-") as tmp:
        scratch = Path(tmp)
        root = make_checkout("ultralytics", "8.4.190", scratch / "repo")
        applied = CliRunner().invoke(app, ["apply", "--repo", str(root), "--module", "SHSA"])
        assert applied.exit_code == 0, applied.output
        data = shapes_dataset(scratch / "shapes", count=32, imgsz=64)
        local = study(root, data, scratch / "local", epochs)
        sequential = alone(scratch / "local", scratch / "alone")
        trials, floor = len(sequential), sum(sequential)
        budget = 1.05 * floor + PER_TRIAL * trials
        print(f"alone: {' + '.join(f'{t:.1f}' for t in sequential)} = {floor:.1f} s ({trials} trials, {epochs} epochs)")
        print(f"local:  {local:.1f} s  ratio {local / floor:.3f}x  (target <= 1.05x + {PER_TRIAL:.0f} s per trial: "
              f"{budget:.1f} s) {'ok' if local <= budget else 'OVER'}")
        context = ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
        try:
            on_ray = study(root, data, scratch / "ray", epochs, "--engine", "ray", "--cpus-per-trial", "1",
                           "--address", context.address_info["gcs_address"])
        finally:
            ray.shutdown()
        print(f"ray:    {on_ray:.1f} s  ratio to the sequential sum {on_ray / floor:.3f}x  (2 trials of 1 CPU at once)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else EPOCHS)
