"""Times one `yamlforge gen-yaml` call against the floor "python + ruamel load/dump of the same file", same run.

Run: .venv/bin/python benchmarks/gen_yaml.py   (prints the ratio; target <= 1.5, no torch import on this path)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from yamlforge.scratch import pristine_checkout

REPEATS = 7
FLOOR = """
import sys
from ruamel.yaml import YAML
yaml = YAML()
data = yaml.load(open(sys.argv[1]).read())
yaml.dump(data, open(sys.argv[2], "w"))
"""
NO_TORCH = "import sys, runpy; sys.argv = ['yamlforge', *sys.argv[1:]]; runpy.run_module('yamlforge', run_name='__main__')" \
           "; assert 'torch' not in sys.modules"


def best_of(command: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    root = pristine_checkout("ultralytics", "8.4.190")
    base = root / "ultralytics/cfg/models/rt-detr/rtdetr-l.yaml"
    out = Path(tempfile.mkdtemp(prefix="yamlforge-bench-")) / "rtdetr-l-Identity.yaml"
    floor = best_of([sys.executable, "-c", FLOOR, str(base), str(out)])
    gen = best_of([sys.executable, "-c", NO_TORCH, "gen-yaml", "rtdetr-l", "--repo", str(root), "--insert-after",
                   "3=nn.Identity", "--remove", "12", "-o", str(out), "--force"])
    print(f"yamlforge gen-yaml rtdetr-l (best of {REPEATS}, fresh interpreter each)")
    print(f"  floor: python + ruamel load/dump  {floor * 1000:7.1f} ms")
    print(f"  gen-yaml                          {gen * 1000:7.1f} ms")
    print(f"  ratio                             {gen / floor:7.2f}x  (target <= 1.5)")


if __name__ == "__main__":
    main()
