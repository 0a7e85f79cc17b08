"""Times `yamlforge apply` on Ultralytics 8.4.190 against the floor "libcst parse + codegen of the same files".

Run: .venv/bin/python benchmarks/apply.py   (prints ratios; targets: apply <= 1.5x floor, --help <= 0.3 s)
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import libcst

from yamlforge.plan import plan_apply
from yamlforge.scratch import pristine_checkout
from yamlforge.specs import SpecRegistry
from yamlforge.targets import detect_target
from yamlforge.writer import write_changeset

REPEATS = 5


def best_of(func, prepare=lambda: None) -> float:
    times = []
    for _ in range(REPEATS):
        state = prepare()
        start = time.perf_counter()
        func(state)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    pristine = pristine_checkout("ultralytics", "8.4.190")
    registry = SpecRegistry()
    layer_specs = [s for s in registry if s.role == "layer"]
    all_specs = list(registry)
    scratch = Path(tempfile.mkdtemp(prefix="yamlforge-bench-"))

    def fresh():
        dest = scratch / f"repo-{time.monotonic_ns()}"
        shutil.copytree(pristine, dest)
        return detect_target(dest)

    def apply(specs):
        def run(target):
            write_changeset(plan_apply(target, specs, registry).changeset)
        return run

    def floor(specs):
        target = detect_target(pristine)
        files = [target.kind.tasks_file] + ([target.kind.flops_file] if any(s.role == "backbone" for s in specs) else [])
        texts = [(pristine / f).read_text() for f in files] + [s.source_text() for s in specs]  # + placed module files
        return lambda _: [libcst.parse_module(t).code for t in texts]

    print(f"yamlforge apply on ultralytics 8.4.190 (best of {REPEATS})")
    for label, specs in (("one module (SHSA)", [registry.get("SHSA")]), ("all layer modules", layer_specs),
                         ("all bundled modules", all_specs)):
        t_apply = best_of(apply(specs), fresh)
        t_floor = best_of(floor(specs))
        print(f"  {label:<22} apply {t_apply * 1000:7.1f} ms   floor {t_floor * 1000:7.1f} ms   "
              f"ratio {t_apply / t_floor:4.2f}  (target <= 1.5)")

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
