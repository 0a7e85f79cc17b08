"""The user's Ultralytics settings for a runner: found where the target looks, copied quiet (or as is with --log)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from yamlforge.target_python import run_runner
from yamlforge.targets import ULTRALYTICS, YOLOV9, Target
from yamlforge.user_settings import private_settings, user_settings_file

HOME = Path("/home/u")


def facts(version: str, kind=ULTRALYTICS) -> dict:
    return Target(root=Path("/r"), kind=kind, version=version).runner_facts()


@pytest.mark.parametrize(("version", "env", "platform", "expected"), [
    ("8.0.227", {}, "linux", "/home/u/.config/Ultralytics/settings.yaml"),
    ("8.0.227", {"YOLO_CONFIG_DIR": "/cfg"}, "linux", "/cfg/settings.yaml"),
    ("8.2.98", {"YOLO_CONFIG_DIR": "/cfg"}, "linux", "/cfg/settings.yaml"),
    ("8.2.99", {"YOLO_CONFIG_DIR": "/cfg"}, "linux", "/cfg/settings.json"),
    ("8.3.195", {"YOLO_CONFIG_DIR": "/cfg"}, "linux", "/cfg/settings.json"),
    ("8.3.196", {"YOLO_CONFIG_DIR": "/cfg"}, "linux", "/cfg/Ultralytics/settings.json"),
    ("8.4.190", {"YOLO_CONFIG_DIR": "/cfg"}, "linux", "/cfg/Ultralytics/settings.json"),
    ("8.3.195", {"XDG_CONFIG_HOME": "/xdg"}, "linux", "/home/u/.config/Ultralytics/settings.json"),
    ("8.4.190", {"XDG_CONFIG_HOME": "/xdg"}, "linux", "/xdg/Ultralytics/settings.json"),
    ("8.4.190", {}, "linux", "/home/u/.config/Ultralytics/settings.json"),
    ("8.4.190", {"XDG_CONFIG_HOME": "/xdg"}, "darwin", "/home/u/Library/Application Support/Ultralytics/settings.json"),
    ("8.1.47", {}, "win32", "/home/u/AppData/Roaming/Ultralytics/settings.yaml"),
], ids=lambda v: v if isinstance(v, str) else "+".join(v) or "no-env")
def test_the_user_settings_file_is_where_that_release_looks(version, env, platform, expected):
    assert user_settings_file(facts(version), env, HOME, platform) == Path(expected)


def test_targets_without_settings_have_no_settings_file():
    assert user_settings_file(facts("0.0.4", YOLOV9), {"YOLO_CONFIG_DIR": "/cfg"}, HOME) is None


def write_user_settings(config_dir: Path, relpath: str, data: dict) -> Path:
    path = config_dir / relpath
    path.parent.mkdir(parents=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        yaml = YAML(typ="safe", pure=True)
        yaml.representer.sort_base_mapping_type_on_output = False
        with path.open("w") as f:
            yaml.dump(data, f)
    return path


USER = {"settings_version": "0.0.4", "datasets_dir": "/data/mine", "sync": True, "api_key": "", "hub": True,
        "tensorboard": True, "wandb": True, "mlflow": False}


@pytest.mark.parametrize(("version", "relpath"), [("8.0.227", "settings.yaml"),
                                                  ("8.4.190", "Ultralytics/settings.json")])
def test_the_copy_turns_analytics_and_logging_off_and_keeps_the_rest(tmp_path, version, relpath):
    user = write_user_settings(tmp_path / "user", relpath, USER)
    before = user.read_bytes()
    copy = private_settings(facts(version), tmp_path / "private", log=False,
                            env={"YOLO_CONFIG_DIR": str(tmp_path / "user")}, home=HOME)
    assert copy == tmp_path / "private" / relpath
    data = json.loads(copy.read_text()) if copy.suffix == ".json" else YAML(typ="safe", pure=True).load(copy)
    assert data == {**USER, "sync": False, "hub": False, "tensorboard": False, "wandb": False}
    assert list(data) == list(USER)  # the target checks its keys: none added, none lost
    assert user.read_bytes() == before


def test_with_log_the_copy_is_the_users_file_byte_for_byte(tmp_path):
    user = write_user_settings(tmp_path / "user", "settings.yaml", USER)
    copy = private_settings(facts("8.0.227"), tmp_path / "private", log=True,
                            env={"YOLO_CONFIG_DIR": str(tmp_path / "user")}, home=HOME)
    assert copy.read_bytes() == user.read_bytes()


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]"], ids=["missing", "invalid", "not-a-mapping"])
def test_no_usable_user_file_means_no_copy(tmp_path, content):
    if content is not None:
        (tmp_path / "user/Ultralytics").mkdir(parents=True)
        (tmp_path / "user/Ultralytics/settings.json").write_text(content)
    assert private_settings(facts("8.4.190"), tmp_path / "private", log=False,
                            env={"YOLO_CONFIG_DIR": str(tmp_path / "user")}, home=HOME) is None
    assert not (tmp_path / "private").exists()


SHOW_CONFIG = """\
import json, os, pathlib, sys
folder = pathlib.Path(os.environ["YOLO_CONFIG_DIR"])
files = {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}
print(json.dumps({"files": files, "log": os.environ["YAMLFORGE_LOG"], "argv": sys.argv[1:]}))
"""


@pytest.mark.parametrize("log", [False, True])
def test_every_runner_starts_from_the_copy(tmp_path, monkeypatch, log):
    """run_runner (verify, export, compare, weights) gives the runner the copy for the target its --target names."""
    write_user_settings(tmp_path / "user", "Ultralytics/settings.json", USER)
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "user"))
    script = tmp_path / "show_config.py"
    script.write_text(SHOW_CONFIG)
    target = Target(root=Path("/r"), kind=ULTRALYTICS, version="8.4.190")
    ran = run_runner(script, ["--mode", "verify"], python=sys.executable, timeout=60, target=target, log=log)
    answer, stderr = ran.data, ran.stderr
    assert answer is not None, stderr
    assert json.loads(answer["files"]["Ultralytics/settings.json"])["sync"] is log
    assert answer["log"] == ("1" if log else "0")
