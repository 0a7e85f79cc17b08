"""Makes scratch checkouts from real PyPI releases (Ultralytics wheels, the yolov9pip sdist) for demos and tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from .errors import YamlforgeError

YOLOV9_RELEASE = "0.0.4"


def cache_dir() -> Path:
    """Where downloaded releases and pristine checkouts are kept (outside any repo)."""
    return Path(os.environ.get("YAMLFORGE_CACHE", Path.home() / ".cache" / "yamlforge"))


def _download(requirement: str, dest: Path, *, sdist: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    pattern = f"{name}-{version}.tar.gz" if sdist else f"{name}-{version}-*.whl"
    found = sorted(dest.glob(pattern))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), requirement]
    if sdist:
        cmd[4:4] = ["--no-binary", ":all:"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(dest.glob(pattern))
    if result.returncode or not found:
        last = (result.stderr.strip().splitlines() or ["no file was downloaded"])[-1]
        raise YamlforgeError(f"could not download {requirement} from PyPI: {last}")
    return found[0]


def pristine_checkout(kind: str, version: str) -> Path:
    """The cached, never-modified checkout root of ``ultralytics==version`` or ``yolov9pip==version``.

    Callers that patch a checkout copy it first (:func:`make_checkout`).
    """
    root = cache_dir() / "checkouts"
    if kind == "ultralytics":
        target = root / f"ultralytics-{version}"
        if not (target / "ultralytics" / "nn" / "tasks.py").is_file():
            wheel = _download(f"ultralytics=={version}", cache_dir() / "wheels", sdist=False)
            tmp = target.with_name(target.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(tmp)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        return target
    if kind == "yolov9":
        top = root / f"yolov9pip-{version}"
        if not (top / "yolov9" / "models" / "yolo.py").is_file():
            sdist = _download(f"yolov9pip=={version}", cache_dir() / "wheels", sdist=True)
            with tarfile.open(sdist) as tf:
                tf.extractall(root, filter="data")
        return top / "yolov9"
    raise YamlforgeError(f"unknown checkout kind '{kind}' (ultralytics or yolov9)")


def make_checkout(kind: str, version: str, dest: Path) -> Path:
    """Copy a pristine checkout to ``dest`` (which must not exist) and return ``dest``."""
    dest = Path(dest)
    if dest.exists():
        raise YamlforgeError(f"'{dest}' already exists; choose a new folder for the scratch checkout")
    shutil.copytree(pristine_checkout(kind, version), dest)
    return dest
