"""Times `yamlforge apply` on Ultralytics 8.4.190 against the floor "libcst parse + codegen of the same files".

Run: .venv/bin/python benchmarks/apply.py   (prints ratios; targets: <= 1.5x the floor per process and in-process,
--help <= 0.3 s)

Per process, every side is a fresh interpreter started the same way, the sides run alternately (a busy moment of
the machine hits every side) and the medians are compared; bytecode caching is on, as for an installed yamlforge.
The floor is python + `import typer` + `import libcst` + parse and codegen of tasks.py and torch_utils.py: the CLI
framework's start-up belongs to the floor, since no typer command avoids it. The apply side is
`yamlforge apply --dry-run` (1 module, and the 4 layer modules) on a scratch checkout.
In-process, apply's own work (plan and write) is compared with libcst's parse + codegen of the files it patches.
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

import libcst

from yamlforge.patch.plan import plan_apply
from yamlforge.patch.writer import write_changeset
from yamlforge.scratch import make_checkout, pristine_checkout
from yamlforge.specs import SpecRegistry
from yamlforge.targets import detect_target

REPEATS = 5  # in-process, best of
PROCESS_REPEATS = 15  # per process, median of
LAYER_MODULES = ("SHSA", "BiLevelRoutingAttention", "RIFormerBlock", "token_mixer")
FLOOR = """
import sys
import typer
import libcst
for path in sys.argv[1:]:
    libcst.parse_module(open(path, encoding="utf-8").read()).code
"""
CLI = "from yamlforge.cli import main; main()"  # what the `yamlforge` console script runs


def best_of(func, prepare=lambda: None) -> float:
    times = []
    for _ in range(REPEATS):
        state = prepare()
        start = time.perf_counter()
        func(state)
        times.append(time.perf_counter() - start)
    return min(times)


def per_process(scratch: Path) -> None:
    root = make_checkout("ultralytics", "8.4.190", scratch / "cli-repo")
    target = detect_target(root)
    floor_files = [str(root / target.kind.tasks_file), str(root / target.kind.flops_file)]
    apply = ["apply", "--repo", str(root), "--dry-run"]
    sides = {
        "floor": (FLOOR, floor_files),
        "apply, 1 module": (CLI, [*apply, "--module", LAYER_MODULES[0]]),
        "apply, 4 modules": (CLI, [*apply, *(arg for name in LAYER_MODULES for arg in ("--module", name))]),
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run(code: str, argv: list[str]) -> None:
        subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True, env=env)

    for code, argv in sides.values():  # warm-up: writes bytecode, fills the page cache
        run(code, argv)
    times: dict[str, list[float]] = {label: [] for label in sides}
    for _ in range(PROCESS_REPEATS):
        for label, (code, argv) in sides.items():
            start = time.perf_counter()
            run(code, argv)
            times[label].append(time.perf_counter() - start)
    medians = {label: statistics.median(runs) for label, runs in times.items()}
    print(f"per process (median of {PROCESS_REPEATS}, alternated; floor: python + import typer + import libcst "
          f"+ parse/codegen of {target.kind.tasks_file} and {target.kind.flops_file})")
    print(f"  floor                  {medians['floor'] * 1000:7.1f} ms")
    for label in list(sides)[1:]:
        print(f"  {label:<22} {medians[label] * 1000:7.1f} ms   ratio {medians[label] / medians['floor']:4.2f}  "
              f"(target <= 1.5)")


def in_process(scratch: Path) -> None:
    pristine = pristine_checkout("ultralytics", "8.4.190")
    registry = SpecRegistry()
    layer_specs = [s for s in registry if s.role == "layer"]
    all_specs = list(registry)

    def fresh():
        dest = scratch / f"repo-{time.monotonic_ns()}"
        shutil.copytree(pristine, dest)
        return detect_target(dest)

    def apply(specs):
        def run(target):
            plan = plan_apply(target, specs, registry)  # the plan holds the checkout lock until it is written
            write_changeset(plan.changeset)
        return run

    def floor(specs):
        target = detect_target(pristine)
        files = [target.kind.tasks_file]
        files += [target.kind.flops_file] if any(s.role == "backbone" for s in specs) else []
        texts = [(pristine / f).read_text() for f in files] + [s.source_text() for s in specs]  # + placed module files
        return lambda _: [libcst.parse_module(t).code for t in texts]

    print(f"in-process (best of {REPEATS}; floor: libcst parse + codegen of the files apply patches and places)")
    for label, specs in (("one module (SHSA)", [registry.get("SHSA")]), ("all layer modules", layer_specs),
                         ("all bundled modules", all_specs)):
        t_apply = best_of(apply(specs), fresh)
        t_floor = best_of(floor(specs))
        print(f"  {label:<22} apply {t_apply * 1000:7.1f} ms   floor {t_floor * 1000:7.1f} ms   "
              f"ratio {t_apply / t_floor:4.2f}  (target <= 1.5)")


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="yamlforge-bench-"))
    print("yamlforge apply on ultralytics 8.4.190")
    per_process(scratch)
    in_process(scratch)
    cli = Path(sys.executable).with_name("yamlforge")
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run([str(cli), "--help"], capture_output=True, check=True)
        runs.append(time.perf_counter() - start)
    print(f"  yamlforge --help       {statistics.median(runs) * 1000:7.1f} ms median  (target <= 300 ms)")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
