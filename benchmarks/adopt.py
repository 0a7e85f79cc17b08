"""Times `yamlforge adopt SOURCE::CLASS` against the floor "python + import torch + build + one forward per layout".

Run: .venv/bin/python benchmarks/adopt.py [REPEATS]   (prints the ratio per fixture; target <= 1.5x)

Then a survey of a generated folder of 20 classes against the sum of probing each class alone (its own runner
process, as `adopt SOURCE::CLASS` does): the survey shares one interpreter, so it should cost far less; the
"strict" ratio compares it with one start-up plus each class's own probing time (target <= 2x).

Per process, both sides are fresh interpreters started the same way, run alternately (a busy moment of the machine
hits both) and compared by their medians, in the same run and on the same fixture. The floor loads the fixture's
file, imports torch, builds the class once and runs one forward per layout adopt had to try (an NHWC block is first
tried as NCHW): the least any probe must do. The adopt side is the whole command: yamlforge's start-up, reading
the source, the import look-up of its requirements, the probe (two builds, several sizes) and writing the spec.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "adopt"
REPEATS = 5  # per side and fixture, median of
# (file, class, constructor kwargs of the floor's build, the layouts adopt tries before the one that works)
CASES = [
    ("layers.py", "ChannelGate", {"channels": 32}, ["nchw"]),
    ("layouts.py", "ChannelsLastMLP", {"dim": 32}, ["nchw", "nhwc"]),
    ("layouts.py", "WindowAttention", {"dim": 32}, ["nchw"]),
]
FLOOR = """
import importlib.util, json, sys
import torch
spec = importlib.util.spec_from_file_location("fixture", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
block = getattr(module, sys.argv[2])(**json.loads(sys.argv[3])).eval()
shapes = {"nchw": (1, 32, 42, 42), "nhwc": (1, 42, 42, 32)}
with torch.no_grad():
    for layout in sys.argv[4].split(","):
        try:
            block(torch.randn(shapes[layout]))
        except Exception:
            pass
"""
CLI = "from yamlforge.cli import main; main()"  # what the `yamlforge` console script runs


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", *argv], check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def measure(case: tuple, scratch: Path, repeats: int, env: dict) -> tuple[float, float]:
    """(floor median, adopt median) in seconds for one fixture class."""
    file, name, kwargs, tried = case
    floor = [FLOOR, str(FIXTURES / file), name, json.dumps(kwargs), ",".join(tried)]

    def adopt(i: int) -> list[str]:
        return [CLI, "adopt", f"{FIXTURES / file}::{name}", "--python", sys.executable,
                "-o", str(scratch / f"{name}{i}")]

    timed(floor, env), timed(adopt(-1), env)  # warm-up: bytecode, page cache
    floors, adopts = [], []
    for i in range(repeats):
        floors.append(timed(floor, env))
        adopts.append(timed(adopt(i), env))
    return statistics.median(floors), statistics.median(adopts)


SURVEY_CLASSES = 20
SURVEY_CLASS = """

class Block{i}(nn.Module):
    def __init__(self, {arg}, reduction={r}):
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d({arg}, max(4, {arg} // reduction), 1), nn.ReLU(),
                                nn.Conv2d(max(4, {arg} // reduction), {arg}, {k}, padding={k} // 2))

    def forward(self, x):
        return x * torch.sigmoid(self.fc(x.mean((2, 3), keepdim=True)))
"""


def survey_folder(folder: Path) -> Path:
    """A package of SURVEY_CLASSES small gates over four files (generated: every class a little different)."""
    folder.mkdir()
    for part in range(4):
        classes = "".join(SURVEY_CLASS.format(i=part * 5 + j, arg=("channels", "dim", "c1")[j % 3],
                                              r=2 + j, k=1 + 2 * (j % 2))
                          for j in range(5))
        (folder / f"blocks{part}.py").write_text("import torch\nfrom torch import nn\n" + classes)
    return folder


def measure_survey(scratch: Path) -> tuple[float, float, float]:
    """(survey seconds, sum of per-class probe seconds, one runner start-up's seconds)."""
    sys.path.insert(0, str(ROOT))
    from yamlforge.adopt import engine, source

    folder = survey_folder(scratch / "survey")
    src = source.load_source(folder)
    classes = source.module_classes(src)
    engine.probe(src, classes[:1], {}, sys.executable)  # warm-up: bytecode, page cache
    start = time.perf_counter()
    engine.survey(folder, sys.executable)
    survey = time.perf_counter() - start
    start = time.perf_counter()
    engine._run_runner(sys.executable, {"root": None, "file": None, "probes": []}, scratch, engine.TIMEOUT)
    startup = time.perf_counter() - start
    alone = 0.0
    for info in classes:
        start = time.perf_counter()
        engine.probe(src, [info], {}, sys.executable)
        alone += time.perf_counter() - start
    return survey, alone, startup


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else REPEATS
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    print(f"yamlforge adopt, per process (median of {repeats}, alternated; floor: python + import torch + build "
          "the class + one forward per layout tried)")
    with tempfile.TemporaryDirectory(prefix="yamlforge-bench-adopt-") as tmp:
        for case in CASES:
            floor, adopt = measure(case, Path(tmp), repeats, env)
            print(f"  {case[1]:<18} floor {floor * 1000:7.1f} ms   adopt {adopt * 1000:7.1f} ms   "
                  f"ratio {adopt / floor:4.2f}  (target <= 1.5)")
        survey, alone, startup = measure_survey(Path(tmp))
        strict = startup + alone - SURVEY_CLASSES * startup
        print(f"survey of {SURVEY_CLASSES} classes {survey:6.2f} s; probed one by one {alone:6.2f} s (ratio "
              f"{survey / alone:4.2f}); one start-up {startup:5.2f} s + their own probing {strict:6.2f} s (strict "
              f"ratio {survey / strict:4.2f}, target <= 2)")


if __name__ == "__main__":
    main()
