"""What the study (``ablate``) e2e tests share: a checkout with SHSA applied beside the synthetic dataset, and
whether a trainer finished writing a checkpoint, and killing a study's driver at such a moment."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from shapes_dataset import shapes_dataset
from typer.testing import CliRunner

from yamlforge.cli import app


def shsa_checkout(root: Path, data_folder: Path, *, imgsz: int) -> tuple[Path, Path]:
    """``root`` (a writable checkout) with SHSA applied, and a 24-image shapes dataset at ``imgsz`` in
    ``data_folder``."""
    applied = CliRunner().invoke(app, ["apply", "--repo", str(root), "--module", "SHSA"])
    assert applied.exit_code == 0, applied.output
    return root, shapes_dataset(data_folder, count=24, imgsz=imgsz)


def written(checkpoint: Path) -> bool:
    """The trainer finished writing ``checkpoint`` (a zip archive: one cut short has no central directory). Not
    unpickled here: that would import the test environment's own ultralytics."""
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def kill_when(driver: subprocess.Popen, ready: Callable[[], bool], *, session: bool) -> None:
    """SIGKILL ``driver`` (with ``session``, its whole session: a killed job) as soon as ``ready()``, which must come
    while it still runs."""
    try:
        while not ready():
            assert driver.poll() is None, "the study ended before the moment to kill it"
            time.sleep(0.05)
    finally:
        if driver.poll() is None and session:
            os.killpg(driver.pid, signal.SIGKILL)
        elif driver.poll() is None:
            os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
