"""What a fork changes, read from its code without torch: the wrapper its CLI picks by file name (yf_wrappers), the
naming rules of its yaml_model_load / guess_model_scale (when gen-yaml must ask its loader), the tasks it ships."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

from yamlforge import stamped_cache
from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml import base as base_module
from yamlforge.modelyaml.base import Base, has_own_naming, resolve_base
from yamlforge.runners import yf_wrappers
from yamlforge.scratch import pristine_checkout
from yamlforge.targets import detect_target

ENTRY = '''
from pathlib import Path


class YOLO:
    pass


class RTDETR:
    pass


def entrypoint(debug=""):
    model = "unused"
    stem = Path(model).stem.lower()
    if "rtdetr" in stem:
        model = RTDETR(model)
    elif any(k in stem for k in ("sam_", "mobile_sam")):
        from fake_fork_models import SAM

        model = SAM(model)
    elif stem.startswith("myolo"):
        from fake_fork_models import MYOLO

        model = MYOLO(model)
    else:
        model = YOLO(model, task=task)
    return model
'''
MODELS = "class SAM:\n    pass\n\n\nclass MYOLO:\n    pass\n"


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    (tmp_path / "fake_fork_cli.py").write_text(ENTRY)
    (tmp_path / "fake_fork_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fake_fork_cli:entrypoint"
    for name in ("fake_fork_cli", "fake_fork_models"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("cfg, name, default", [
    ("models/rtdetr-l-SHSA.yaml", "RTDETR", False),
    ("mobile_sam.yaml", "SAM", False),
    ("/x/myolo-n-SHSA.yaml", "MYOLO", False),
    ("yolov8n-seg.yaml", "YOLO", True),
])
def test_the_entry_points_own_conditions_pick_the_class(fake_cli, cfg, name, default):
    cls, is_default = yf_wrappers.entry_choice(fake_cli, cfg)
    assert (cls.__name__, is_default) == (name, default)


def test_a_target_without_an_entry_point_leaves_the_choice_to_the_head():
    assert yf_wrappers.entry_choice(None, "yolov8n.yaml") is None


def entry_chain(version: str) -> list[str]:
    """The classes of the release's own CLI chain, read from its source."""
    source = (pristine_checkout("ultralytics", version) / "ultralytics/cfg/__init__.py").read_text()
    function = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "entrypoint")
    return [branch.name for branch in yf_wrappers.chain(ast.parse(textwrap.dedent(ast.get_source_segment(source,
                                                                                                      function))))]


@pytest.mark.parametrize("version, names", [("8.4.190", ["RTDETR", "FastSAM", "SAM", "NAS", "YOLO"]),
                                            ("8.0.227", ["RTDETR", "FastSAM", "SAM", "YOLO"])])
def test_the_releases_chains_are_read(version, names):
    assert entry_chain(version) == names


@pytest.mark.parametrize("version", ["8.4.190", "8.0.227"])
def test_a_release_has_no_naming_of_its_own(version):
    """So a name the stock rules miss is refused at once, without starting the target's Python."""
    assert not has_own_naming(detect_target(pristine_checkout("ultralytics", version)))


def fork_names(repo: Path) -> Path:
    tasks = repo / "ultralytics/nn/tasks.py"
    stock = '    unified_path = re.sub(r"(\\d+)([nslmx])(.+)?$", r"\\1\\3", str(path))'
    text = tasks.read_text()
    assert stock in text
    tasks.write_text(text.replace(stock, stock + '\n    unified_path = re.sub(r"myolo-([nslmx])", "myolo", '
                                                 'unified_path)'))
    return tasks


def test_a_forks_own_regex_is_naming_of_its_own(genyaml_repo):
    fork_names(genyaml_repo)
    target = detect_target(genyaml_repo)
    assert "myolo-([nslmx])" in target.naming_patterns
    assert has_own_naming(target)


def test_a_forks_answers_are_kept_while_tasks_py_and_the_file_are_unchanged(genyaml_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("YAMLFORGE_CACHE", str(tmp_path / "cache"))
    tasks = fork_names(genyaml_repo)
    model = genyaml_repo / "ultralytics/cfg/models/v8/yolov8.yaml"
    target = detect_target(genyaml_repo)
    entry = stamped_cache.entry_file(base_module.NAMES_CACHE, f"{target.tasks_path}::myolo-s")
    stamped_cache.write(entry, {"file": str(model), "scale": "s"}, [target.tasks_path, model])
    no_python = "/no/such/python"  # a cache miss would have to start it, and fail
    assert base_module.ask_target(target, "myolo-s", no_python) == Base(model, "myolo-s", "s")
    tasks.write_text(tasks.read_text() + "\n")  # tasks.py changed: so may its rules
    assert stamped_cache.read(entry) is None


def test_shipped_tasks_are_the_releases_own():
    assert detect_target(pristine_checkout("ultralytics", "8.0.227")).shipped_tasks == (
        "detect", "segment", "classify", "pose")
    assert "obb" in detect_target(pristine_checkout("ultralytics", "8.4.190")).shipped_tasks


@pytest.mark.parametrize("name", ["yolov8n-obb", "yolo11n-obb"])
def test_a_task_the_release_lacks_is_refused_naming_what_it_ships(name):
    with pytest.raises(YamlforgeError) as error:
        resolve_base(name, detect_target(pristine_checkout("ultralytics", "8.0.227")))
    assert str(error.value).startswith(f"ultralytics 8.0.227 has no obb task, so no model '{name}': it ships "
                                       "detect, segment, classify, pose")


def test_the_same_name_resolves_where_the_task_ships():
    assert resolve_base("yolo11n-obb", detect_target(pristine_checkout("ultralytics", "8.4.190"))).scale == "n"
