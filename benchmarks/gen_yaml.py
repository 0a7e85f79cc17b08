"""Times one `yamlforge gen-yaml` call against its floor "python + typer + ruamel load/dump of the same file".

Run: .venv/bin/python benchmarks/gen_yaml.py   (prints the ratio; target <= 1.5, no torch import on this path)

The call is the README's happy path, `gen-yaml rtdetr-l --insert-after 3=SHSA`, on a scratch Ultralytics 8.4.190
checkout with SHSA applied. Every side is a fresh interpreter started the same way, the sides run alternately
REPEATS times; bytecode caching is on (PYTHONDONTWRITEBYTECODE unset), as for an installed yamlforge. The floor
imports typer, the CLI framework's start-up that no typer command avoids. Medians lead (best in brackets), wall
clock and the process's CPU time: on a shared machine the CPU time is the steadier of the two.

Two more ratios put the target in context: against the floor without typer, and in-process, gen-yaml's own work
against ruamel's load/dump of the same file.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

from yamlforge.modelyaml.compile import GenRequest, compile_yaml, write_result
from yamlforge.modelyaml.edits import parse_edit
from yamlforge.patch.plan import plan_apply
from yamlforge.patch.writer import write_changeset
from yamlforge.scratch import make_checkout
from yamlforge.specs import SpecRegistry
from yamlforge.targets import detect_target

REPEATS = 15
FLOOR = """
import sys
from ruamel.yaml import YAML
yaml = YAML()
data = yaml.load(open(sys.argv[1]).read())
yaml.dump(data, open(sys.argv[2], "w"))
"""
CLI = "from yamlforge.cli import main; main()"  # what the `yamlforge` console script runs
NO_TORCH = "import sys; from yamlforge.cli import app; app(standalone_mode=False); assert 'torch' not in sys.modules"


def best_of(func) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="yamlforge-bench-"))
    root = make_checkout("ultralytics", "8.4.190", scratch / "repo")
    registry = SpecRegistry()
    write_changeset(plan_apply(detect_target(root), [registry.get("SHSA")], registry).changeset)
    base = root / "ultralytics/cfg/models/rt-detr/rtdetr-l.yaml"
    out = scratch / "rtdetr-l-SHSA.yaml"
    args = ["gen-yaml", "rtdetr-l", "--repo", str(root), "--insert-after", "3=SHSA", "-o", str(out), "--force"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    sides = {
        "floor": ("import typer\n" + FLOOR, [str(base), str(scratch / "floor.yaml")]),
        "floor without typer": (FLOOR, [str(base), str(scratch / "floor.yaml")]),
        "gen-yaml": (CLI, args),
    }

    def run(code: str, argv: list[str]) -> tuple[float, float]:
        """(wall, CPU) seconds of one fresh interpreter running ``code``."""
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        if status:
            raise SystemExit(f"{code!r} {argv} failed")
        return time.perf_counter() - start, usage.ru_utime + usage.ru_stime

    subprocess.run([sys.executable, "-c", NO_TORCH, *args], check=True, capture_output=True, env=env)  # warm-up
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in sides}
    for _ in range(REPEATS):  # alternating, so a busy moment of the machine hits every side
        for label, (code, argv) in sides.items():
            times[label].append(run(code, argv))
    wall = {label: [w for w, _ in runs] for label, runs in times.items()}
    cpu = {label: [c for _, c in runs] for label, runs in times.items()}

    text = base.read_text()
    request = GenRequest("rtdetr-l", [parse_edit("insert-after", "3=SHSA")], repo=root, output=out, force=True)
    work = best_of(lambda: write_result(compile_yaml(request)))
    yaml = YAML()
    ruamel_work = best_of(lambda: yaml.dump(yaml.load(text), io.StringIO()))

    def ratio(label: str, floor: str) -> str:
        med = statistics.median
        return (f"{med(wall[label]) / med(wall[floor]):5.2f}x ({min(wall[label]) / min(wall[floor]):.2f}x)   CPU "
                f"{med(cpu[label]) / med(cpu[floor]):5.2f}x")

    print(f"yamlforge gen-yaml rtdetr-l --insert-after 3=SHSA ({REPEATS} alternated runs, fresh interpreter each)")
    print("                                       wall median (best)   CPU median")
    for label, shown in (("floor", "floor: python + typer + ruamel"), ("floor without typer", "floor without typer"),
                         ("gen-yaml", "gen-yaml (no torch imported)")):
        print(f"  {shown:<34} {statistics.median(wall[label]) * 1000:7.1f} ms ({min(wall[label]) * 1000:5.1f})  "
              f"{statistics.median(cpu[label]) * 1000:7.1f} ms")
    print(f"  ratio (target <= 1.5)              {ratio('gen-yaml', 'floor')}")
    print(f"  against the floor without typer    {ratio('gen-yaml', 'floor without typer')}")
    print(f"  in-process, against load/dump      {work / ruamel_work:5.2f}x  ({work * 1000:.1f} ms vs "
          f"{ruamel_work * 1000:.1f} ms, best of {REPEATS})")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
