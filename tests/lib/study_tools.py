"""What the study (``ablate``) e2e tests share: a checkout with SHSA applied beside the synthetic dataset, and
whether a trainer finished writing a checkpoint."""

from __future__ import annotations

import zipfile
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
