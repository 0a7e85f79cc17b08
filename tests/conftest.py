"""Shared fixtures: real checkouts built once per session from cached PyPI releases, and a subprocess runner.

The tests never download: ``YAMLFORGE_OFFLINE`` turns a release missing from the cache into an error naming
``python -m yamlforge.scratch --prefetch`` (``scripts/test`` runs it first). Set it to 0 to allow downloads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from yamlforge.scratch import OFFLINE_ENV, ULTRALYTICS_RELEASES, YOLOV9_RELEASE, make_checkout, pristine_checkout

# Set before any test module is imported: some read a pristine checkout at import time.
os.environ.setdefault(OFFLINE_ENV, "1")
ULTRALYTICS_VERSIONS = ULTRALYTICS_RELEASES
TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
E2E = TESTS / "e2e"
sys.path.insert(0, str(TESTS / "lib"))  # the helpers the test files share (checkout_tools, graph_checks, ...)


# The end-to-end files that take longest alone, longest first (from one-file runs, `pytest FILE -n 0 --durations=15`,
# and the trainings each runs). Listed files start first, then the other end-to-end files in name order, then the
# unit files: a greedy two-worker schedule that starts with the longest leaves no long file running alone at the end.
# Put a new long file at its place here.
LONGEST_FIRST = (
    "test_weights_base_e2e.py",  # six base trainings, then a training from each carried checkpoint
    "test_timm_backbone_e2e.py",  # fifteen trainings, the 34-model sweep, an ONNX export
    "test_scenarios_e2e.py",  # nine trainings, three of them RT-DETR at 128 on 8.0.227
    "test_tasks_e2e.py",  # ten verify --train runs, one per task and release
    "test_script_tasks_e2e.py",
    "test_ablate_e2e.py",
    "test_ablate_tasks_e2e.py",
    "test_ablate_ray_e2e.py",
    "test_adopt_e2e.py",  # six trainings
    "test_ablate_variants_e2e.py",
    "test_verify_e2e.py",
    "test_apply_e2e.py",
    "test_backbone_e2e.py",
    "test_export_e2e.py",
    "test_yolov5_yolov7_e2e.py",
    "test_fuse_e2e.py",
    "test_backbone_genyaml_e2e.py",
)


def run_order(item) -> tuple[bool, int]:
    """End-to-end tests first, the files of LONGEST_FIRST in its order before the others (a stable sort: the
    tests of a file keep theirs)."""
    e2e = item.get_closest_marker("e2e") is not None
    name = item.path.name
    return not e2e, LONGEST_FIRST.index(name) if e2e and name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config, items):
    """Everything under ``tests/e2e/`` is marked ``e2e`` (so ``-m "not e2e"`` is the fast layer), and end-to-end
    tests run first, the longest files before the others (:data:`LONGEST_FIRST`): ``scripts/test``'s two workers
    start on the long files, and the many short ones fill in at the end instead of one long file running alone."""
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.e2e)
    items.sort(key=run_order)


@pytest.fixture(scope="session")
def checkout_factory(tmp_path_factory):
    """``checkout_factory("ultralytics", "8.4.190")`` -> a fresh, writable copy of that release's checkout."""

    def make(kind: str, version: str) -> Path:
        dest = tmp_path_factory.mktemp(f"{kind}-{version}") / "repo"
        return make_checkout(kind, version, dest)

    return make


@pytest.fixture(scope="session")
def pristine():
    """``pristine("ultralytics", "8.4.190")`` -> the cached read-only checkout (do not modify it)."""
    return pristine_checkout


@pytest.fixture
def genyaml_repo(tmp_path):
    """What gen-yaml reads of a real 8.4.190 checkout (version, tasks.py, model YAMLs), copied: fast, no torch."""
    import shutil

    source = pristine_checkout("ultralytics", "8.4.190")
    dest = tmp_path / "repo"
    for rel in ("ultralytics/__init__.py", "ultralytics/nn/tasks.py"):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / rel, dest / rel)
    shutil.copytree(source / "ultralytics/cfg/models", dest / "ultralytics/cfg/models")
    return dest


@pytest.fixture
def yolov9_checkout(checkout_factory):
    return checkout_factory("yolov9", YOLOV9_RELEASE)


def run_in_checkout(root: Path, code: str, *, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with the checkout first on sys.path; raise with its output on failure."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root)
    env.setdefault("YOLO_CONFIG_DIR", str(root.parent / "ultralytics-config"))
    env["YOLO_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1])\n" + textwrap.dedent(code), str(root)],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if result.returncode:
        raise AssertionError(f"subprocess failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture
def half_width_spec(tmp_path) -> Path:
    """A spec claiming `channels: keep` for a layer that halves its width (tests/lib/halfwidth.py)."""
    from halfwidth import HALF_WIDTH_PY, HALF_WIDTH_SPEC

    (tmp_path / "half_width.py").write_text(HALF_WIDTH_PY)
    spec = tmp_path / "half_width.yaml"
    spec.write_text(HALF_WIDTH_SPEC)
    return spec
