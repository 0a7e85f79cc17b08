"""Running a runner script in the target's Python: which interpreter, a private environment, a timeout, one JSON.

Every command that runs a model or the user's code goes through here (``check/``, ``weights/``, ``adopt/``,
gen-yaml's timm look-up), so a crash, a hang or a print of user code is one clear answer, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import YamlforgeError
from .user_settings import LOG_ENV, private_settings

RUNNERS = Path(__file__).resolve().parent / "runners"  # the scripts, run by path: they import nothing from here


def resolve_python(python: str | None) -> str:
    if python is None:
        return sys.executable
    found = shutil.which(python) or (python if Path(python).is_file() else None)
    if not found:
        raise YamlforgeError(f"Python interpreter '{python}' not found", where="--python",
                             hint="give the path of your training venv's python, e.g. --python ~/venv/bin/python")
    return found


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


def run_runner(python: str, args: list[str], *, timeout: float, workdir: Path | None = None,
               script: Path, log: bool = False) -> tuple[dict | None, str]:
    """Run the runner ``script`` with ``args``; returns (its JSON object or None, stderr).

    The runner's private config folder starts with a copy of the user's settings for the target of ``--target``
    (analytics and logging integrations off unless ``log``).
    """
    with tempfile.TemporaryDirectory(prefix="yamlforge-verify-") as tmp:
        cwd = workdir or Path(tmp)
        env = runner_env(Path(tmp), log=log)
        if "--target" in args:
            private_settings(json.loads(args[args.index("--target") + 1]), Path(env["YOLO_CONFIG_DIR"]), log=log)
        try:
            result = subprocess.run([python, str(script), *args], cwd=cwd, env=env,
                                    capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            partial = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
            return None, f"{partial}\ntimed out after {timeout:.0f} s"
        except OSError as exc:
            raise YamlforgeError(f"cannot run '{python}': {exc.strerror}", where="--python") from None
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1]), result.stderr
    except (IndexError, ValueError):
        return None, result.stderr
