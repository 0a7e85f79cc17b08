"""Makes scratch checkouts from real PyPI releases (Ultralytics, YOLOv5 wheels; yolov9pip, yolov7detect sdists).

``python -m yamlforge.scratch --prefetch`` fills the cache with every supported release and ``EXTRA_RELEASES``
(what ``scripts/test`` runs before the tests); with ``YAMLFORGE_OFFLINE=1`` (set by the tests) a release missing from
the cache is an error naming that command instead of a download.
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import YamlforgeError
from .resources import cache_dir, data_dir

OFFLINE_ENV = "YAMLFORGE_OFFLINE"
PREFETCH = "python -m yamlforge.scratch --prefetch"


@dataclass(frozen=True)
class Family:
    """How one family's PyPI release becomes a checkout root: which distribution, wheel or sdist, which folder.

    ``root`` is the checkout root inside the unpacked archive (``{dist}`` and ``{version}`` filled in); ``add``
    copies files the release lacks into it: ``(folder under examples/, folder under the root)``.
    """

    dist: str
    sdist: bool
    versions: tuple[str, ...]
    root: str = ""
    add: tuple[tuple[str, str], ...] = ()


FAMILIES = {
    "ultralytics": Family("ultralytics", False, ("8.0.227", "8.1.47", "8.2.103", "8.3.40", "8.3.228", "8.4.190")),
    "yolov9": Family("yolov9pip", True, ("0.0.4",), root="{dist}-{version}/yolov9"),
    "yolov5": Family("yolov5", False, ("7.0.14",), root="yolov5"),
    # the sdist's yolov7/ folder is the upstream code; it ships no model YAMLs, so ours go where upstream keeps them
    "yolov7": Family("yolov7detect", True, ("1.0.1",), root="{dist}-{version}/yolov7",
                     add=(("models/yolov7", "cfg/training"),)),
}
# Wheels the tests build second environments from (the traps doctor names): PyPI's thop, which replaces
# ultralytics-thop's module, and the torchvision released before the pinned torch 2.14.1 (its operators do not load).
ENVIRONMENT_WHEELS = ("thop==0.1.1.post2209072238", "torchvision==0.28.0")
# (kind, version) of releases cached outside the supported matrix, for the few tests of one release's behaviour:
# Ultralytics 8.3.100's exporter picks ONNX opset 9 under new torch (tests/e2e/test_export_e2e.py).
EXTRA_RELEASES = (("ultralytics", "8.3.100"),)
ULTRALYTICS_RELEASES = FAMILIES["ultralytics"].versions
YOLOV9_RELEASE = FAMILIES["yolov9"].versions[0]
YOLOV5_RELEASE = FAMILIES["yolov5"].versions[0]
YOLOV7_RELEASE = FAMILIES["yolov7"].versions[0]


def _download(requirement: str, dest: Path, *, sdist: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    name, version = requirement.split("==")
    pattern = f"{name}-{version}.tar.gz" if sdist else f"{name}-{version}-*.whl"
    found = sorted(dest.glob(pattern))
    if found:
        return found[0]
    if os.environ.get(OFFLINE_ENV, "0") not in ("", "0"):
        raise YamlforgeError(f"{requirement} is not in the cache {dest} and {OFFLINE_ENV} is set: "
                             f"run `{PREFETCH}` first (it downloads every supported release once)")
    print(f"download {requirement}", file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), requirement]
    if sdist:
        cmd[4:4] = ["--no-binary", ":all:"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(dest.glob(pattern))
    if result.returncode or not found:
        last = (result.stderr.strip().splitlines() or ["no file was downloaded"])[-1]
        raise YamlforgeError(f"could not download {requirement} from PyPI: {last}")
    return found[0]


def _unpack(archive: Path, dest: Path) -> None:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(dest, filter="data")


def family(kind: str) -> Family:
    if kind not in FAMILIES:
        raise YamlforgeError(f"unknown checkout kind '{kind}' (known: {', '.join(FAMILIES)})")
    return FAMILIES[kind]


def pristine_checkout(kind: str, version: str) -> Path:
    """The cached, never-modified checkout root of release ``version`` of family ``kind`` (see :data:`FAMILIES`).

    Callers that patch a checkout copy it first (:func:`make_checkout`).
    """
    spec = family(kind)
    folder = cache_dir() / "checkouts" / f"{spec.dist}-{version}.unpacked"
    if not folder.is_dir():  # the last step of an unpack renames it into place
        archive = _download(f"{spec.dist}=={version}", cache_dir() / "wheels", sdist=spec.sdist)
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        _unpack(archive, tmp)
        tmp.rename(folder)
    _byte_compile(folder)
    root = folder / spec.root.format(dist=spec.dist, version=version)
    for source, into in spec.add:  # ours, so refreshed on every call: the cache never holds a stale copy
        shutil.copytree(data_dir("examples") / source, root / into, dirs_exist_ok=True)
    return root


def _byte_compile(folder: Path) -> None:
    """Byte-compile an unpacked release once per Python (a marker file beside it says it was): copies keep the
    files' times, so every checkout made from it imports without first compiling its few hundred modules (about
    6 s per fresh Ultralytics copy)."""
    marker = folder.with_name(f"{folder.name}.{sys.implementation.cache_tag}")
    if not marker.exists():
        compileall.compile_dir(folder, quiet=2, workers=0)
        marker.touch()


def cached_wheel(requirement: str) -> Path:
    """The cached wheel of ``name==version``, downloaded once (an error instead when offline)."""
    return _download(requirement, cache_dir() / "wheels", sdist=False)


def make_checkout(kind: str, version: str, dest: Path) -> Path:
    """Copy a pristine checkout to ``dest`` (which must not exist) and return ``dest``."""
    dest = Path(dest)
    if dest.exists():
        raise YamlforgeError(f"'{dest}' already exists; choose a new folder for the scratch checkout")
    shutil.copytree(pristine_checkout(kind, version), dest)
    return dest


def prefetch() -> list[Path]:
    """Make sure every supported release, extra test release and test wheel is cached (downloading only what is
    missing)."""
    releases = [(kind, version) for kind, spec in FAMILIES.items() for version in spec.versions] + list(EXTRA_RELEASES)
    roots = [pristine_checkout(kind, version) for kind, version in releases]
    return roots + [cached_wheel(requirement) for requirement in ENVIRONMENT_WHEELS]


def main(argv: list[str] | None = None) -> int:
    """``python -m yamlforge.scratch --prefetch``: fill the cache; silent when it is full, one line per download."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m yamlforge.scratch", description=main.__doc__)
    parser.add_argument("--prefetch", action="store_true", required=True,
                        help="download and unpack every supported release (Ultralytics, yolov9pip, YOLOv5, YOLOv7) "
                             "and the extra releases tests pin")
    parser.parse_args(argv)
    try:
        prefetch()
    except YamlforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
