"""adopt's probe: runs ``adopt_runner.py`` on a source's classes in the target's Python, one JSON answer per class.

The source is copied into a temporary folder (a package under a private name, its imports made relative); each class
gets a timeout, and one that hangs or kills the process is reported while the classes after it are probed afresh.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..errors import YamlforgeError
from ..target_python import RUNNERS, RunnerStream, stream_runner
from . import source as adopt_source

RUNNER = RUNNERS / "adopt_runner.py"
TIMEOUT = 60  # seconds for one class: its import and a few small forwards; a hang ends here
TIMEOUT_ENV = "YAMLFORGE_ADOPT_TIMEOUT"  # overrides TIMEOUT: a module that is slow on small inputs, or a test
STARTUP_TIMEOUT = 120  # seconds for the target's Python to import torch (slow on a loaded machine)
PACKAGE_ALIAS = "_yamlforge_adopted"  # the private name a probed package is imported under


def probe_timeout() -> float:
    """Seconds one class may take: :data:`TIMEOUT`, or the number in ``$YAMLFORGE_ADOPT_TIMEOUT``."""
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        return float(text) if text else TIMEOUT
    except ValueError:
        raise YamlforgeError(f"{TIMEOUT_ENV}={text!r} is not a number of seconds", where=TIMEOUT_ENV) from None


def _materialise(source: adopt_source.Source, folder: Path) -> dict:
    """The runner's view of the source: a single file as it is, a package copied with relative imports."""
    if not source.is_package:
        return {"root": None, "file": str(source.root / source.entry)}
    package = folder / PACKAGE_ALIAS
    files = {**source.files, **adopt_source.relativize_imports(source)}
    for rel, text in files.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text, encoding="utf-8")
    (package / "__init__.py").touch()
    return {"root": str(folder), "file": None}


def _module_name(source: adopt_source.Source, rel: str) -> str | None:
    if not source.is_package:
        return None
    parts = rel.removesuffix(".py").split("/")
    return ".".join([PACKAGE_ALIAS, *(parts[:-1] if parts[-1] == "__init__" else parts)])


def probe(source: adopt_source.Source, classes: list[adopt_source.ClassInfo], sets: dict, python: str, *,
          timeout: float = TIMEOUT, derived: dict | None = None) -> dict[str, dict]:
    """Run the runner on ``classes`` in ``python``; class name → its JSON (``ok`` false with ``error`` on failure).

    Each class gets ``timeout`` seconds; one that hangs or kills the process is reported and the classes after it
    are probed in a fresh process.
    """
    found: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="yamlforge-adopt-") as tmp:
        request = _materialise(source, Path(tmp) / "src")
        pending = list(classes)
        while pending:
            request["probes"] = [{"class": c.name, "module": _module_name(source, c.file), "sets": sets,
                                  "derived": derived or {}} for c in pending]
            (Path(tmp) / "request.json").write_text(json.dumps(request), encoding="utf-8")
            said = stream_runner(RUNNER, [str(Path(tmp) / "request.json")], python=python, timeout=timeout,
                                 first_timeout=max(timeout, STARTUP_TIMEOUT), workdir=Path(tmp))
            found.update({answer["class"]: answer for answer in said.answers if "class" in answer})
            stuck = next((c.name for c in pending if c.name not in found), None)
            if stuck:
                found[stuck] = {"class": stuck, "ok": False, "error": _no_answer(stuck, said, timeout)}
            pending = [c for c in pending if c.name not in found]
    return found


def _no_answer(name: str, said: RunnerStream, timeout: float) -> str:
    """Why the runner gave no answer for ``name``: a hang (where it was) or a crash (its last line)."""
    steps = [line.split(":", 1)[1].split() for line in said.stderr.splitlines() if line.startswith("yamlforge-probe:")]
    at = next((f" (forward, {s[1]} input at {s[2]}x{s[2]})" for s in reversed(steps) if s[0] == name), "")
    if said.timed_out:
        return f"{name} did not finish within {timeout:.0f} s{at}; its code hangs or is far too slow on small inputs"
    return f"probing {name} crashed the Python process{at}: {said.tail(1, empty='no output')[:200]}"
