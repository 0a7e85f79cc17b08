"""Times `yamlforge verify` (no --train) against its floor: one process that imports the target, builds, runs.

Run: .venv/bin/python benchmarks/verify.py [REPEATS]   (prints one ratio per model; target <= 1.5x)

The models are the issue's: yolov8n with CBAM (benchmarks/cbam, applied to a scratch Ultralytics 8.4.190 checkout)
after layer 6, and the same insertion in yolov8n-seg, both at verify's defaults (640, batch 2). The floor is the
least a verification can do, in one fresh interpreter: python, import the target, build the YAML with its own
wrapper, a forward in eval mode, a forward in train mode and the backward of the task's own loss on a batch in the
task's format (yamlforge's runner helper builds the batch, as verify does). verify is the console script's
process, which runs the runner in the target's Python: two interpreters, GFLOPs and the report on top of the floor.
Every side is a fresh interpreter started the same way; the sides alternate REPEATS times (a busy moment of the
machine hits both) and the medians are compared (best in brackets), wall clock and CPU time (children included).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from yamlforge.scratch import make_checkout
from yamlforge.target_python import RUNNERS

REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
SPEC = Path(__file__).resolve().parent / "cbam" / "cbam.yaml"
MODELS = (("yolov8n", 6), ("yolov8n-seg", 6))  # (base, the row CBAM goes after)
IMGSZ, BATCH = 640, 2  # verify's defaults
CLI = "from yamlforge.cli import main; main()"  # what the `yamlforge` console script runs
FLOOR = """
import sys
root, runners, cfg, imgsz, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
sys.path.insert(0, root)
sys.path.append(runners)
import torch
from ultralytics import YOLO
from ultralytics.cfg import get_cfg
import yf_facts
import yf_tasks

torch.set_num_threads(yf_facts.torch_threads())  # the runner's threads (at most two unless OMP_NUM_THREADS says)
wrapper = YOLO(cfg)
model = wrapper.model
x = torch.rand(batch, 3, imgsz, imgsz)
model.eval()
with torch.no_grad():
    model(x)
model.train()
model.args = get_cfg()
targets = yf_tasks.to_tensors(yf_tasks.task_batch(wrapper.task, batch, imgsz, yf_tasks.model_shapes(model)))
model.loss({"img": x, **targets})[0].sum().backward()
"""


def timed(argv: list[str], env: dict) -> tuple[float, float]:
    """(wall, CPU of the process and its children) seconds of one fresh interpreter."""
    before = os.times()
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, err = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"{argv[:3]} failed:\n{err.decode()[-2000:]}")
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def make_models(root: Path, out: Path, env: dict) -> list[Path]:
    subprocess.run([sys.executable, "-c", CLI, "apply", "--repo", str(root), "--spec", str(SPEC)], check=True,
                   capture_output=True, env=env)
    models = []
    for base, after in MODELS:
        model = out / f"{base}-CBAM.yaml"
        subprocess.run([sys.executable, "-c", CLI, "gen-yaml", base, "--repo", str(root), "--insert-after",
                        f"{after}=CBAM", "-o", str(model)], check=True, capture_output=True, env=env)
        models.append(model)
    return models


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="yamlforge-bench-"))
    root = make_checkout("ultralytics", "8.4.190", scratch / "repo")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    models = make_models(root, scratch, env)
    print(f"yamlforge verify MODEL (no --train, {IMGSZ}x{IMGSZ}, batch {BATCH}) against its floor "
          f"({REPEATS} alternated runs, fresh interpreter each)")
    print("                               wall median (best)        CPU median")
    for model in models:
        sides = {"floor": ["-c", FLOOR, str(root), str(RUNNERS), str(model), str(IMGSZ), str(BATCH)],
                 "verify": ["-c", CLI, "verify", str(model), "--repo", str(root), "--imgsz", str(IMGSZ),
                            "--batch", str(BATCH)]}
        for argv in sides.values():  # warm-up: bytecode caches, the runner's first start
            timed(argv, env)
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in sides}
        for _ in range(REPEATS):
            for label, argv in sides.items():
                times[label].append(timed(argv, env))
        wall = {label: [w for w, _ in runs] for label, runs in times.items()}
        cpu = {label: [c for _, c in runs] for label, runs in times.items()}
        med = statistics.median
        print(f"{model.stem}")
        for label in sides:
            print(f"  {label:<28} {med(wall[label]):6.2f} s ({min(wall[label]):5.2f})     {med(cpu[label]):6.2f} s")
        print(f"  ratio (target <= 1.5)        {med(wall['verify']) / med(wall['floor']):5.2f}x "
              f"({min(wall['verify']) / min(wall['floor']):.2f}x)       "
              f"{med(cpu['verify']) / med(cpu['floor']):5.2f}x")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
