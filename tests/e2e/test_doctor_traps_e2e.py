"""doctor and verify name the environment traps, each found in a real second environment.

Each venv is made once per session without pip, and sees the main venv's packages (torch, ultralytics-thop, ...)
through a ``.pth`` file placed after its own site-packages, so what is installed into it shadows them exactly as a
``pip install`` into one environment would: the cached Ultralytics 8.4.190 wheel (a pip-installed copy shadowing
the checkout), PyPI's ``thop`` (replacing the module of ``ultralytics-thop``), or the torchvision released before
the main venv's torch (whose compiled operators do not load into it).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

from yamlforge.check.doctor import doctor
from yamlforge.check.verify import verify
from yamlforge.scratch import ENVIRONMENT_WHEELS, cached_wheel
from yamlforge.targets import detect_target

THOP, OLD_TORCHVISION = ENVIRONMENT_WHEELS  # PyPI's thop; the torchvision released before the main venv's torch
TORCH_MINOR = int(metadata.version("torch").split(".")[1])  # torch 2.m ships with torchvision 0.(m+15)


def make_venv(folder: Path, wheel: Path) -> Path:
    """A venv with ``wheel`` installed (no dependencies) in front of the main venv's packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", "--disable-pip-version-check", str(wheel)], check=True)
    # after the install: pip would find the main venv's copy and skip it
    (Path(purelib) / "main-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture(scope="session")
def shadowing_venv(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("venv-ultralytics") / "venv",
                     cached_wheel("ultralytics==8.4.190"))


@pytest.fixture(scope="session")
def thop_venv(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("venv-thop") / "venv",
                     cached_wheel(THOP))


@pytest.fixture(scope="session")
def old_torchvision_venv(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("venv-torchvision") / "venv",
                     cached_wheel(OLD_TORCHVISION))


@pytest.fixture(scope="module")
def checkout_8_3(checkout_factory):
    return checkout_factory("ultralytics", "8.3.40")  # its DDP script does not pin sys.path


@pytest.fixture(scope="module")
def checkout_8_4(checkout_factory):
    return checkout_factory("ultralytics", "8.4.190")  # its get_flops passes arguments only ultralytics-thop has


def test_doctor_names_the_copy_ddp_workers_import_and_the_fix(shadowing_venv, checkout_8_3):
    report = doctor(detect_target(checkout_8_3), python=str(shadowing_venv))
    assert report.imported["inside_checkout"]  # single-GPU training is fine ...
    (problem,) = report.problems  # ... DDP is not
    venv_copy = shadowing_venv.parent.parent / "lib"
    assert "multi-GPU (DDP)" in problem.message and "imports ultralytics 8.4.190 from " in problem.message
    assert str(venv_copy) in problem.message and "KeyError" in problem.message
    # a wheel-unpacked checkout cannot be `pip install -e`d: the fix removes the copy and adds a .pth file
    assert problem.fix.startswith("pip uninstall ultralytics, then echo ")
    assert f"echo {checkout_8_3} > {venv_copy}" in problem.fix and problem.fix.count(".pth") == 2


def test_doctor_ddp_check_passes_when_workers_get_the_checkout(shadowing_venv, checkout_8_3, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(checkout_8_3))  # inherited by the launcher and its workers
    report = doctor(detect_target(checkout_8_3), python=str(shadowing_venv))
    assert report.ok, report.problems


def test_doctor_names_the_thop_that_replaced_ultralytics_thop(thop_venv, checkout_8_4):
    report = doctor(detect_target(checkout_8_4), python=str(thop_venv))
    (problem,) = report.problems
    assert f"({thop_venv.parent.parent / 'lib'}" in problem.message
    assert "comes from thop, not ultralytics-thop" in problem.message
    assert problem.fix == (f"{thop_venv} -m pip uninstall -y thop && "
                           f"{thop_venv} -m pip install --force-reinstall --no-deps ultralytics-thop")


def test_verify_names_thop_as_the_cause_of_zero_gflops(thop_venv, checkout_8_4):
    report = verify(Path("yolov8n.yaml"), detect_target(checkout_8_4), imgsz=64, batch=1, python=str(thop_venv))
    flops = report.check("flops")
    assert report.totals["target_gflops"] == 0 and report.totals["gflops"] > 0
    assert flops.status == "warn" and "because the thop Python imports" in flops.message
    assert flops.hint.endswith("pip install --force-reinstall --no-deps ultralytics-thop")
    assert any("not ultralytics-thop" in note for note in report.notes)


def test_doctor_names_the_torchvision_that_matches_torch(old_torchvision_venv, checkout_8_4):
    report = doctor(detect_target(checkout_8_4), python=str(old_torchvision_venv))
    assert report.imported["inside_checkout"]  # Ultralytics imports torchvision only when it builds a model
    (problem,) = report.problems
    assert problem.message == "torchvision does not import: RuntimeError: operator torchvision::nms does not exist"
    assert problem.fix.startswith("torchvision was built for another torch than 2.")
    assert problem.fix.endswith(f"{old_torchvision_venv} -m pip install 'torchvision==0.{TORCH_MINOR + 15}.*'")
