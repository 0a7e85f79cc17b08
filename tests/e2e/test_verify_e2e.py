"""verify on real checkout copies: stock models pass (smoke training and reload included); four real failures caught."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from yamlforge.check.verify import verify
from yamlforge.cli import app
from yamlforge.scratch import YOLOV9_RELEASE
from yamlforge.targets import ULTRALYTICS, detect_target

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "verify-schema.json").read_text())
cli = CliRunner()

# A small GELAN (YOLOv9) detector from stock modules; the Dual variant adds an auxiliary branch like yolov9-c.
GELAN_YAML = """\
nc: 2
depth_multiple: 1.0
width_multiple: 1.0
anchors: 3
backbone:
  [
   [-1, 1, Conv, [16, 3, 2]],  # 0-P1/2
   [-1, 1, Conv, [32, 3, 2]],  # 1-P2/4
   [-1, 1, RepNCSPELAN4, [32, 32, 16, 1]],  # 2
   [-1, 1, ADown, [64]],  # 3-P3/8
   [-1, 1, RepNCSPELAN4, [64, 64, 32, 1]],  # 4
   [-1, 1, ADown, [96]],  # 5-P4/16
   [-1, 1, RepNCSPELAN4, [96, 96, 48, 1]],  # 6
   [-1, 1, ADown, [128]],  # 7-P5/32
   [-1, 1, RepNCSPELAN4, [128, 128, 64, 1]],  # 8
  ]
head:
  [
   [-1, 1, SPPELAN, [128, 64]],  # 9
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],  # 10
   [[-1, 6], 1, Concat, [1]],  # 11
   [-1, 1, RepNCSPELAN4, [96, 96, 48, 1]],  # 12
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],  # 13
   [[-1, 4], 1, Concat, [1]],  # 14
   [-1, 1, RepNCSPELAN4, [64, 64, 32, 1]],  # 15 (P3/8)
   [-1, 1, ADown, [64]],  # 16
   [[-1, 12], 1, Concat, [1]],  # 17
   [-1, 1, RepNCSPELAN4, [96, 96, 48, 1]],  # 18 (P4/16)
   [-1, 1, ADown, [96]],  # 19
   [[-1, 9], 1, Concat, [1]],  # 20
   [-1, 1, RepNCSPELAN4, [128, 128, 64, 1]],  # 21 (P5/32)
{detect}
  ]
"""
DDETECT = "   [[15, 18, 21], 1, DDetect, [nc]],  # 22"
DUAL_DDETECT = """\
   [4, 1, Conv, [64, 3, 1]],  # 22 auxiliary P3
   [6, 1, Conv, [96, 3, 1]],  # 23 auxiliary P4
   [8, 1, Conv, [128, 3, 1]],  # 24 auxiliary P5
   [[22, 23, 24, 15, 18, 21], 1, DualDDetect, [nc]],  # 25"""

# Test modules a user could have hand-registered in tasks.py; each one breaks one check for a real reason.
TEST_MODULES = '''\
"""Modules that break verify checks on purpose (tests only)."""
import torch
import torch.nn as nn


class _NaNBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class NaNGradient(nn.Module):
    """Identity forward; its backward turns every gradient into NaN."""

    def forward(self, x):
        return _NaNBackward.apply(x)


class CachedScale(nn.Module):
    """Caches a tensor derived from a parameter in __init__: a non-leaf tensor, so deepcopy (GFLOPs, EMA) fails."""

    def __init__(self):
        super().__init__()
        self.logit = nn.Parameter(torch.zeros(1))
        self.scale = torch.sigmoid(self.logit) * 2

    def forward(self, x):
        return x * self.scale
'''

SMALL_DETECTOR = """\
nc: 2
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
  - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
  - [-1, 1, {module}, []] # 2
  - [-1, 1, Conv, [256, 3, 2]] # 3-P3/8
  - [-1, 1, Conv, [512, 3, 2]] # 4-P4/16
  - [-1, 1, Conv, [1024, 3, 2]] # 5-P5/32
head:
  - [[3, 4, 5], 1, Detect, [nc]] # 6
"""


def run_verify_cli(tmp_path, model, repo, *options) -> tuple[int, dict]:
    result = cli.invoke(app, ["verify", str(model), "--repo", str(repo), "--json", *options])
    data = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA)
    return result.exit_code, data


def status(data: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in data["checks"]}


@pytest.fixture(scope="module")
def u84(checkout_factory):
    return checkout_factory("ultralytics", "8.4.190")


@pytest.fixture(scope="module")
def u80(checkout_factory):
    return checkout_factory("ultralytics", "8.0.227")


@pytest.fixture(scope="module")
def v9(checkout_factory):
    return checkout_factory("yolov9", YOLOV9_RELEASE)


def hand_patch(root: Path) -> Path:
    """Import TEST_MODULES into tasks.py, the way users hand-register a module."""
    (root / "ultralytics/nn/modules/yf_test_modules.py").write_text(TEST_MODULES)
    tasks = root / "ultralytics/nn/tasks.py"
    registration = "\nfrom ultralytics.nn.modules.yf_test_modules import CachedScale, NaNGradient\n"
    tasks.write_text(tasks.read_text() + registration)
    return root


@pytest.fixture(scope="module")
def hand_patched_u84(checkout_factory):
    return hand_patch(checkout_factory("ultralytics", "8.4.190"))


@pytest.fixture(scope="module")
def hand_patched_u80(checkout_factory):
    return hand_patch(checkout_factory("ultralytics", "8.0.227"))


# ------------------------------------------------------------------ stock models pass


def test_verify_yolov8n_passes_on_8_4_190(tmp_path, u84):
    code, data = run_verify_cli(tmp_path, "yolov8n.yaml", u84, "--imgsz", "64")
    assert code == 0, data["checks"]
    assert data["failed_checks"] == [] and data["imported"]["inside_checkout"]
    assert data["totals"]["layers"] == 23 and data["totals"]["gflops"] > 0
    assert [row["stride"] for row in data["layers"][:4]] == [2, 4, 4, 8]
    assert data["layers"][0]["shape"] == [2, 16, 32, 32]
    assert data["gradients"]["finite"]


def test_verify_builds_rtdetr_l_with_the_rtdetr_wrapper_on_8_4_190(tmp_path, u84):
    """The wrapper is chosen by the head; RT-DETR models train with it in tests/e2e/test_scenarios_e2e.py (a, b, c),
    where the trained checkpoint also reloads with and without ULTRALYTICS_SAFE_LOAD."""
    code, data = run_verify_cli(tmp_path, "rtdetr-l.yaml", u84, "--imgsz", "64")
    assert code == 0, data["checks"]
    assert data["builder"] == "RTDETR(rtdetr-l.yaml)"
    assert data["layers"][-1]["module"] == "RTDETRDecoder"


@pytest.mark.parametrize(("detect", "script"), [(DDETECT, "train.py"), (DUAL_DDETECT, "train_dual.py")],
                         ids=["DDetect", "DualDDetect"])
def test_verify_train_yolov9_gelan(tmp_path, v9, detect, script):
    model = tmp_path / "gelan.yaml"
    model.write_text(GELAN_YAML.format(detect=detect))
    code, data = run_verify_cli(tmp_path, model, v9, "--imgsz", "64", "--train")
    assert code == 0, data["checks"]
    assert data["builder"] == "models.yolo.Model(gelan.yaml)"
    assert status(data)["train"] == status(data)["reload"] == "pass"
    assert f"with {script} " in data["checks"][5]["message"]


# ------------------------------------------------------------------ the four failures


def test_shadowing_site_packages_copy_fails_import(tmp_path, u80, monkeypatch):
    monkeypatch.setenv("YAMLFORGE_VERIFY_PATH", "append")  # the checkout last: site-packages' 8.4.190 wins
    code, data = run_verify_cli(tmp_path, "yolov8n.yaml", u80, "--imgsz", "64")
    assert code == 1
    assert data["failed_checks"][0] == "import"
    imported = data["imported"]
    assert not imported["inside_checkout"] and imported["version"] != "8.0.227"
    assert "site-packages" in imported["file"]
    check = data["checks"][0]
    assert f"not from the checkout {u80}" in check["message"] and "KeyError" in check["message"]
    assert "pip uninstall ultralytics" in check["hint"] and f"PYTHONPATH={u80}" in check["hint"]


def test_shadowing_is_named_first_in_the_rendered_report(u80, monkeypatch):
    monkeypatch.setenv("YAMLFORGE_VERIFY_PATH", "append")
    result = cli.invoke(app, ["verify", "yolov8n.yaml", "--repo", str(u80), "--imgsz", "64"])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("FAILED import: Python imports ultralytics 8.4.190 from ")


def test_shadowed_checkout_explains_the_keyerror_symptom(tmp_path, hand_patched_u80, monkeypatch):
    monkeypatch.setenv("YAMLFORGE_VERIFY_PATH", "append")
    model = tmp_path / "nan.yaml"
    model.write_text(SMALL_DETECTOR.format(module="NaNGradient"))  # registered in the checkout, not in site-packages
    code, data = run_verify_cli(tmp_path, model, hand_patched_u80, "--imgsz", "64")
    assert code == 1
    assert data["failed_checks"] == ["import", "build"]
    build = data["checks"][1]
    assert build["message"].startswith("layer 2: module NaNGradient is not known to the ultralytics Python imports (")
    assert "site-packages" in build["message"] and "see the import check" in build["message"]


@pytest.mark.parametrize("kind", ["ultralytics", "yolov9"])
def test_module_not_applied_names_layer_and_fix(tmp_path, u84, v9, kind):
    if kind == "ultralytics":
        repo, text = u84, SMALL_DETECTOR.format(module="SHSA")
    else:
        repo, text = v9, GELAN_YAML.format(detect=DDETECT).replace("[-1, 1, RepNCSPELAN4, [32, 32, 16, 1]],  # 2",
                                                                     "[-1, 1, SHSA, []],  # 2")
    model = tmp_path / "with-shsa.yaml"
    model.write_text(text)
    code, data = run_verify_cli(tmp_path, model, repo, "--imgsz", "64")
    assert code == 1
    assert data["failed_checks"] == ["build"]
    build = data["checks"][1]
    assert build["message"] == f"layer 2: module SHSA is not known to {repo}"
    assert build["hint"] == f"yamlforge apply --repo {repo} --module SHSA"


def test_model_that_cannot_be_deepcopied_fails_gflops(tmp_path, hand_patched_u80):
    model = tmp_path / "cached.yaml"
    model.write_text(SMALL_DETECTOR.format(module="CachedScale"))
    code, data = run_verify_cli(tmp_path, model, hand_patched_u80, "--imgsz", "64")
    assert code == 1
    assert data["failed_checks"] == ["flops"]
    flops = data["checks"][3]
    assert flops["layer"] == {"index": 2, "module": "CachedScale"}
    assert "cannot be deep-copied" in flops["message"]
    assert data["totals"]["target_gflops"] == 0  # what the user sees: 8.0's get_flops profiles a deepcopy
    assert "the target prints GFLOPs 0" in flops["message"] and data["totals"]["gflops"] > 0


def test_nan_gradient_names_parameter_and_source_layer(tmp_path, hand_patched_u84):
    model = tmp_path / "nan.yaml"
    model.write_text(SMALL_DETECTOR.format(module="NaNGradient"))
    code, data = run_verify_cli(tmp_path, model, hand_patched_u84, "--imgsz", "64")
    assert code == 1
    assert data["failed_checks"] == ["backward"]
    gradients = data["gradients"]
    assert not gradients["finite"]
    assert gradients["first_nonfinite"].startswith("model.0.")  # everything before layer 2 gets NaN
    assert gradients["source_layer"] == {"index": 2, "module": "NaNGradient"}
    assert not any(name.startswith(("model.3.", "model.6.")) for name in gradients["no_grad"])


def test_verify_library_call_matches_cli(u84):
    report = verify(Path("yolov8n.yaml"), detect_target(u84), imgsz=64)
    assert report.ok and report.check("backward").status == "pass"


# ------------------------------------------------------------------ the user's settings in the smoke training

# Module stems of Ultralytics' logging integrations (ultralytics/utils/callbacks/<stem>.py);
# hub also fires 8.0's events.
INTEGRATIONS = {"hub", "clearml", "comet", "dvc", "mlflow", "neptune", "raytune", "tensorboard", "wb"}


def new_user_settings(repo: Path, config_dir: Path, datasets_dir: Path) -> Path:
    """The settings file the target writes for a new user (its defaults: sync on, and on 8.0 TensorBoard, W&B and
    HUB on), with the user's own datasets_dir."""
    env = dict(os.environ, YOLO_CONFIG_DIR=str(config_dir), YOLO_OFFLINE="1")
    subprocess.run([sys.executable, "-c", "import ultralytics"], cwd=repo, env=env, check=True, timeout=300,
                   capture_output=True)
    (path,) = (p for p in config_dir.rglob("settings.*") if p.is_file())
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        data["datasets_dir"] = str(datasets_dir)
        path.write_text(json.dumps(data, indent=2))
    else:
        path.write_text(re.sub(r"(?m)^datasets_dir: .*$", f"datasets_dir: {datasets_dir}", path.read_text()))
    return path


@contextlib.contextmanager
def outside_pytest(monkeypatch):
    """Ultralytics turns analytics and integrations off when it sees pytest (PYTEST_CURRENT_TEST) or GitHub Actions:
    the runner must see neither, or the check proves nothing. Pytest pops the variable itself after the test."""
    for name in ("GITHUB_ACTIONS", "GITHUB_WORKFLOW", "RUNNER_OS"):
        monkeypatch.delenv(name, raising=False)
    saved = os.environ.pop("PYTEST_CURRENT_TEST")
    try:
        yield
    finally:
        os.environ["PYTEST_CURRENT_TEST"] = saved


# The suite's one smoke training per Ultralytics release (8.4 also reloads with ULTRALYTICS_SAFE_LOAD=1), run the
# way users run it: outside pytest, with a settings file that turns analytics on.
@pytest.mark.parametrize(("version", "safe_reload"), [("8.0.227", None), ("8.4.190", "pass")])
def test_smoke_training_uses_the_users_settings_and_sends_nothing(tmp_path, monkeypatch, u80, u84, version,
                                                                   safe_reload):
    repo = {"8.0.227": u80, "8.4.190": u84}[version]
    user_file = new_user_settings(repo, tmp_path / "user-config", tmp_path / "my-datasets")
    before = user_file.read_bytes()
    assert '"sync": true' in before.decode() or "sync: true" in before.decode()
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "user-config"))
    with outside_pytest(monkeypatch):
        code, data = run_verify_cli(tmp_path, "yolov8n.yaml", repo, "--imgsz", "32", "--train")
    assert code == 0, data["checks"]
    assert status(data)["train"] == status(data)["reload"] == "pass"
    assert status(data).get("safe_reload") == safe_reload  # 8.0 has no restricted loader
    settings = data["settings"]
    (client,) = settings["analytics"].values()  # the real events client the trainer's callbacks call
    assert client["tests_running"] is False  # Ultralytics did not see pytest: its default path ran
    assert {k: v for k, v in settings["values"].items() if k in ULTRALYTICS.runtime.quiet_settings and v} == {}
    assert client["enabled"] is False  # it sends nothing, online or not
    assert not INTEGRATIONS & {m.rsplit(".", 1)[-1] for m in data["train"]["callbacks"]}, data["train"]["callbacks"]
    assert settings["corrected"] == []  # the target read the quiet copy itself: nothing left to turn off
    assert settings["values"]["datasets_dir"] == str(tmp_path / "my-datasets")  # ... of the user's own file
    assert user_file.read_bytes() == before


def test_without_a_settings_file_the_runner_turns_the_defaults_off_on_8_0_227(tmp_path, monkeypatch, u80):
    """No user file: 8.0 starts from defaults (sync, hub, TensorBoard, W&B on) and builds its events client at import;
    the runner turns them off before anything runs."""
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "empty-config"))
    with outside_pytest(monkeypatch):
        code, data = run_verify_cli(tmp_path, "yolov8n.yaml", u80, "--imgsz", "32")
    assert code == 0, data["checks"]
    settings = data["settings"]
    assert settings["corrected"] == list(ULTRALYTICS.runtime.quiet_settings)
    assert {k: v for k, v in settings["values"].items() if k in ULTRALYTICS.runtime.quiet_settings and v} == {}
    assert settings["analytics"]["ultralytics.hub.utils:events"]["enabled"] is False
    assert not (tmp_path / "empty-config").exists()  # the user's folder is never written
