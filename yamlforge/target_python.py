"""Running a runner script in the target's Python: which interpreter, a private environment, a timeout, one JSON.

Every command that runs a model or the user's code goes through here (``check/``, ``weights/``, ``adopt/``,
gen-yaml's timm look-up), so a crash, a hang or a print of user code is one clear answer, never a traceback.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath, PureWindowsPath
from typing import TYPE_CHECKING

from .errors import YamlforgeError
from .runners.yf_facts import LOG_ENV  # the runners read it: "1" keeps the user's settings as they are
from .user_settings import private_settings

if TYPE_CHECKING:
    from .targets import Target

RUNNERS = Path(__file__).resolve().parent / "runners"  # the scripts, run by path: they import nothing from here


def resolve_python(python: str | None) -> str:
    """The interpreter ``--python`` names: a command on PATH, an interpreter's path, or an environment's folder
    (a venv's ``bin/python`` or ``Scripts\\python.exe``, a conda env's ``python.exe``); default: this Python."""
    if python is None:
        return sys.executable
    found = shutil.which(python) or (python if Path(python).is_file() else None)
    if not found and Path(python).is_dir():
        inside = interpreter_in(Path(python), lambda path: Path(path).is_file())
        found = str(inside) if inside is not None else None
    if not found:
        raise YamlforgeError(f"Python interpreter '{python}' not found", where="--python",
                             hint=f"give the path of your training environment's python, e.g. --python {_example()}")
    return found


def interpreter_in(env: PurePath, is_file: Callable[[PurePath], bool]) -> PurePath | None:
    """The interpreter of the environment folder ``env``, laid out as on its OS (the path's flavour says which):
    a venv's ``Scripts\\python.exe`` or a conda env's ``python.exe`` on Windows, ``bin/python`` elsewhere."""
    if isinstance(env, PureWindowsPath):
        candidates = [env / "Scripts" / "python.exe", env / "python.exe"]
    else:
        candidates = [env / "bin" / "python", env / "bin" / "python3"]
    return next((path for path in candidates if is_file(path)), None)


def _example() -> str:
    return r"C:\path\to\venv\Scripts\python.exe" if os.name == "nt" else "~/venv/bin/python"


def runner_env(workdir: Path, *, log: bool = False) -> dict[str, str]:
    """No downloads, no writes to the user's settings: config dirs live in the temporary folder."""
    env = dict(os.environ)
    env.update({
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(workdir / "ultralytics-config"),
        "YOLOV5_CONFIG_DIR": str(workdir / "yolov5-config"),
        "MPLBACKEND": "Agg",
        "PYTHONIOENCODING": "utf-8",
        LOG_ENV: "1" if log else "0",
    })
    return env


@dataclass(frozen=True)
class RunnerAnswer:
    """What a runner said: its JSON object (``data``, None when it printed none), its stderr, and whether it hung."""

    data: dict | None
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """The runner answered, and not with an ``error`` (a crash it caught, or facts it does not understand)."""
        return self.data is not None and "error" not in self.data

    @property
    def error(self) -> str | None:
        """The runner's own one-line error, or None (no answer at all: see ``tail``)."""
        return None if self.data is None else self.data.get("error")

    @property
    def crashed(self) -> bool:
        """The runner caught an exception (its own or the target's): its answer carries the traceback."""
        return self.data is not None and "internal_error" in self.data

    @property
    def failed_check(self) -> dict | None:
        """The first check the runner reports as failed (the one the user reads first), or None."""
        return next((c for c in (self.data or {}).get("checks", []) if c["status"] == "fail"), None)

    def failure(self, runner: str) -> str:
        """Why the ``runner`` subprocess gave no usable answer, in one line (when not ``ok``): it printed no result,
        crashed, or refused the target facts."""
        if self.data is None:
            return f"the {runner} subprocess printed no result"
        return f"the {runner} subprocess {'crashed' if self.crashed else 'refused to run'}: {self.error}"

    def reason(self, lines: int) -> str:
        """The runner's own error, else the last ``lines`` lines of its stderr: one short why, never empty."""
        return self.error or self.tail(lines, empty="no output")

    def diagnostic(self, lines: int = 15) -> str:
        """What to show under a failure: the runner's traceback when it crashed, else the end of its stderr."""
        return (self.data or {}).get("internal_error") or self.tail(lines)

    def tail(self, lines: int, *, sep: str = "\n", empty: str = "") -> str:
        """The last ``lines`` non-empty lines of stderr: what a runner that printed no answer said before it ended."""
        return last_lines(self.stderr, lines, sep=sep, empty=empty)


def last_lines(text: str, lines: int, *, sep: str = "\n", empty: str = "") -> str:
    """The last ``lines`` non-empty lines of a subprocess's output, joined by ``sep`` (``empty`` if there are none)."""
    said = [line for line in text.strip().splitlines() if line.strip()]
    return sep.join(said[-lines:]) or empty


def run_runner(script: Path, args: list[str], *, python: str, timeout: float, target: Target | None = None,
               workdir: Path | None = None, log: bool = False) -> RunnerAnswer:
    """Run the runner ``script`` with ``args`` in ``python``; never raises for what the runner does.

    With ``target``, the runner gets ``--target FACTS`` and its private config folder starts with a copy of the
    user's settings for that target (analytics and logging integrations off unless ``log``).
    """
    facts = target.runner_facts() if target is not None else None
    if facts is not None:
        args = [*args, "--target", json.dumps(facts)]
    with tempfile.TemporaryDirectory(prefix="yamlforge-run-") as tmp:
        env = runner_env(Path(tmp), log=log)
        if facts is not None:
            private_settings(facts, Path(env["YOLO_CONFIG_DIR"]), log=log)
        try:
            result = subprocess.run([python, str(script), *args], cwd=workdir or Path(tmp), env=env,
                                    capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            partial = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            return RunnerAnswer(None, f"{partial}\ntimed out after {timeout:.0f} s", timed_out=True)
        except OSError as exc:
            raise YamlforgeError(f"cannot run '{python}': {exc.strerror}", where="--python") from None
    return RunnerAnswer(_last_json(result.stdout), result.stderr)


def _last_json(stdout: str) -> dict | None:
    """A runner's answer is its last non-empty stdout line, a JSON object; anything else is no answer."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


@dataclass(frozen=True)
class RunnerStream(RunnerAnswer):
    """What a streaming runner said: every JSON object it printed, one a line, in order (``data`` is the last)."""

    answers: tuple[dict, ...] = ()


def stream_runner(script: Path, args: list[str], *, python: str, timeout: float, first_timeout: float,
                  workdir: Path) -> RunnerStream:
    """Run the runner ``script``, which prints one JSON object a line; never raises for what the runner does.

    Each line must come within ``timeout`` seconds of the one before, the first within ``first_timeout`` (the
    target's Python importing torch); a runner silent for longer is killed (``timed_out``, with the answers so far).
    """
    with tempfile.TemporaryDirectory(prefix="yamlforge-run-") as tmp, \
            open(Path(tmp) / "stderr.txt", "w+", encoding="utf-8", errors="replace") as err:
        try:  # stderr goes to a file: a chatty user module cannot fill a pipe nobody reads while we wait for stdout
            proc = subprocess.Popen([python, str(script), *args], cwd=workdir, env=runner_env(Path(tmp)),
                                    stdout=subprocess.PIPE, stderr=err, text=True)
        except OSError as exc:
            raise YamlforgeError(f"cannot run '{python}': {exc.strerror}", where="--python") from None
        answers, timed_out = _json_lines(proc, timeout, first_timeout)
        proc.wait()
        err.seek(0)
        stderr = err.read()
    return RunnerStream(answers[-1] if answers else None, stderr, timed_out, answers=tuple(answers))


def _json_lines(proc: subprocess.Popen, timeout: float, first_timeout: float) -> tuple[list[dict], bool]:
    """(the JSON objects ``proc`` printed, whether it was killed for going silent): a thread reads its stdout, so a
    wait for the next line can time out."""
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    answers: list[dict] = []
    wait = first_timeout
    while True:
        try:
            line = lines.get(timeout=wait)
        except queue.Empty:
            proc.kill()
            return answers, True
        if line is None:
            return answers, False
        answer = _last_json(line)
        if answer is not None:
            answers.append(answer)
        wait = timeout


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        if line.strip():
            lines.put(line)
    lines.put(None)
