"""Times one `yamlforge gen-yaml` call against the floor "python + ruamel load/dump of the same file", same run.

Run: .venv/bin/python benchmarks/gen_yaml.py   (prints the ratio; target <= 1.5, no torch import on this path)

The call is the README's happy path, `gen-yaml rtdetr-l --insert-after 3=SHSA`, on a scratch Ultralytics 8.4.190
checkout with SHSA applied. Every side is a fresh interpreter started the same way, the sides run alternately, best
of REPEATS; bytecode caching is on (PYTHONDONTWRITEBYTECODE unset), as for an installed yamlforge.

Two more ratios put the target in context: against the floor plus `import typer` (the CLI framework's start-up,
which no typer command avoids), and in-process, gen-yaml's own work against ruamel's load/dump of the same file.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

from yamlforge.modelyaml.compile import GenRequest, compile_yaml, parse_edit, write_result
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
        "floor": (FLOOR, [str(base), str(scratch / "floor.yaml")]),
        "floor + import typer": ("import typer\n" + FLOOR, [str(base), str(scratch / "floor.yaml")]),
        "gen-yaml": (CLI, args),
    }

    def run(code: str, argv: list[str]) -> None:
        subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True, env=env)

    run(NO_TORCH, args)  # also the warm-up that writes bytecode
    times: dict[str, list[float]] = {label: [] for label in sides}
    for _ in range(REPEATS):  # alternating, so a busy moment of the machine hits every side
        for label, (code, argv) in sides.items():
            start = time.perf_counter()
            run(code, argv)
            times[label].append(time.perf_counter() - start)
    floor, floor_cli, gen = (min(times[label]) for label in sides)

    text = base.read_text()
    request = GenRequest("rtdetr-l", [parse_edit("insert-after", "3=SHSA")], repo=root, output=out, force=True)
    work = best_of(lambda: write_result(compile_yaml(request)))
    yaml = YAML()
    ruamel_work = best_of(lambda: yaml.dump(yaml.load(text), io.StringIO()))

    print(f"yamlforge gen-yaml rtdetr-l --insert-after 3=SHSA (best of {REPEATS}, fresh interpreter each)")
    print(f"  floor: python + ruamel load/dump  {floor * 1000:7.1f} ms")
    print(f"  gen-yaml                          {gen * 1000:7.1f} ms   (no torch imported)")
    print(f"  ratio                             {gen / floor:7.2f}x  (target <= 1.5)")
    print(f"  against floor + `import typer`    {gen / floor_cli:7.2f}x  ({floor_cli * 1000:.1f} ms)")
    print(f"  in-process, against load/dump     {work / ruamel_work:7.2f}x  ({work * 1000:.1f} ms vs "
          f"{ruamel_work * 1000:.1f} ms)")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
