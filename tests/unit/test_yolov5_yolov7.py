"""YOLOv5 (the yolov5 7.0.14 wheel) and YOLOv7 (the yolov7detect 1.0.1 sdist) as targets, without torch: detection,
the import prefix of pip-packaged roots, runner facts, parse_model excerpts, fusion hosts and gen-yaml round trips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from test_codemod_registration import FIXTURES, apply_bundled

from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.compile import GenRequest, compile_yaml, write_result
from yamlforge.modelyaml.edits import parse_edit
from yamlforge.patch.fusion import resolve_fusions
from yamlforge.runners import verify_runner as runner
from yamlforge.runners import yf_facts
from yamlforge.scratch import YOLOV5_RELEASE, YOLOV7_RELEASE, YOLOV9_RELEASE, pristine_checkout
from yamlforge.specs import bundled_specs
from yamlforge.targets import YOLOV5, YOLOV7, YOLOV9, detect_target

PACKAGES = [("yolov5", YOLOV5_RELEASE, YOLOV5), ("yolov7", YOLOV7_RELEASE, YOLOV7)]
IDS = [p[0] for p in PACKAGES]
SHSA = next(s for s in bundled_specs() if s.name == "SHSA")
# Every model YAML the packages ship (yolov7detect ships none: ours, in cfg/training); anchors.yaml holds no model.
SHIPPED = [(kind, version, rel) for kind, version, folder in
           (("yolov5", YOLOV5_RELEASE, "models"), ("yolov7", YOLOV7_RELEASE, "cfg/training"))
           for rel in sorted(p.relative_to(pristine_checkout(kind, version)).as_posix()
                             for p in (pristine_checkout(kind, version) / folder).rglob("*.yaml"))
           if not rel.endswith("anchors.yaml")]


@pytest.mark.parametrize(("kind", "version", "expected"), PACKAGES, ids=IDS)
def test_packaged_root_is_detected_with_its_version_and_import_prefix(kind, version, expected):
    target = detect_target(pristine_checkout(kind, version))
    assert (target.kind, target.label, target.package_prefix, target.package) == (
        expected, f"{kind} {version}", f"{kind}.", kind)
    assert target.import_module("shsa") == f"{kind}.models.yamlforge.shsa"
    assert target.path_entry == target.root.parent
    assert {"Conv", "Concat", "Detect"} <= target.known_layers  # read through `from yolov5.models.common import *`


def test_yolov9_is_still_yolov9_with_no_prefix():
    target = detect_target(pristine_checkout("yolov9", YOLOV9_RELEASE))
    assert (target.kind, target.label, target.package_prefix, target.package) == (YOLOV9, "yolov9", "", "models")
    assert target.runner_facts()["path_entry"] == str(target.root)


@pytest.mark.parametrize(("marker", "expected"), [("utils/dataloaders.py", YOLOV5), ("train_aux.py", YOLOV7)],
                         ids=IDS)
def test_git_clone_imports_its_code_without_prefix(tmp_path, marker, expected):
    for rel, text in (("models/yolo.py", "from models.common import *\n"), ("models/common.py", "class C3: ...\n"),
                      (marker, "")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    target = detect_target(tmp_path)
    assert (target.kind, target.version, target.package_prefix, target.package) == (expected, None, "", "models")
    assert target.import_module("shsa") == "models.yamlforge.shsa"
    assert target.runner_facts()["model_class"] == "models.yolo:Model"
    assert "C3" in target.known_layers


def test_packaged_root_renamed_is_refused_naming_the_fix(tmp_path):
    root = tmp_path / "v5"
    shutil.copytree(pristine_checkout("yolov5", YOLOV5_RELEASE), root)
    with pytest.raises(YamlforgeError, match="its folder must be named 'yolov5', not 'v5'") as err:
        detect_target(root)
    assert err.value.hint == f"mv {root} {tmp_path / 'yolov5'}"


def test_the_folder_above_a_packaged_root_points_at_it():
    root = pristine_checkout("yolov7", YOLOV7_RELEASE)
    with pytest.raises(YamlforgeError, match="is not an Ultralytics, YOLOv9, YOLOv7 or YOLOv5 checkout") as err:
        detect_target(root.parent)
    assert err.value.hint == f"--repo {root}"


@pytest.mark.parametrize(("kind", "version", "expected"), PACKAGES, ids=IDS)
def test_runner_facts_name_the_checkout_as_its_code_imports_it(kind, version, expected):
    facts = detect_target(pristine_checkout(kind, version)).runner_facts()
    assert (facts["kind"], facts["package"], facts["tasks_module"]) == (kind, kind, f"{kind}.models.yolo")
    assert facts["model_class"] == f"{kind}.models.yolo:Model"
    assert facts["checkpoint_loader"] == f"{kind}.models.experimental:attempt_load"
    assert runner.read_facts(json.dumps(facts)) == json.loads(json.dumps(facts))


def test_yolov7_trains_with_its_own_scripts_and_hyperparameters():
    facts = detect_target(pristine_checkout("yolov7", YOLOV7_RELEASE)).runner_facts()
    assert yf_facts.by_head(facts["train_scripts"], {"head": [[[1, 2], 1, "IAuxDetect", []]]}) == "train_aux.py"
    assert yf_facts.by_head(facts["train_scripts"], {"head": [[[1, 2], 1, "IDetect", []]]}) == "train.py"
    assert "--noplots" not in facts["train_flags"]  # YOLOv7's train.py has no such option
    hyp = yaml.safe_load(Path(facts["train_hyp"]).read_text(encoding="utf-8"))
    assert {"loss_ota", "paste_in", "anchor_t", "obj"} <= set(hyp)


@pytest.mark.parametrize(("kind", "version", "expected"), PACKAGES, ids=IDS)
def test_parse_model_excerpt_before_after(kind, version, expected):
    """imports + parse_model of the real package, the four bundled layer modules applied as reviewed in .after."""
    before = (FIXTURES / f"{kind}-{version}.py.before").read_text(encoding="utf-8")
    after = (FIXTURES / f"{kind}-{version}.py.after").read_text(encoding="utf-8")
    assert apply_bundled(before, f"{kind}.models.yamlforge", "models/yolo.py") == after
    assert apply_bundled(after, f"{kind}.models.yamlforge", "models/yolo.py") == after


def _read(root):
    return lambda rel: (root / rel).read_text(encoding="utf-8") if (root / rel).is_file() else None


def test_c3_is_a_fusion_host_on_yolov5():
    root = pristine_checkout("yolov5", YOLOV5_RELEASE)
    fusions = resolve_fusions(detect_target(root), [SHSA], ["all"], None, _read(root))
    assert [f.name for f in fusions] == ["C3_SHSA"]


@pytest.mark.parametrize("host", ["ELAN", "all"])
def test_yolov7_elan_fusion_is_refused_saying_why(host):
    root = pristine_checkout("yolov7", YOLOV7_RELEASE)
    with pytest.raises(YamlforgeError, match="ELAN and E-ELAN blocks are no class"):
        resolve_fusions(detect_target(root), [SHSA], [host], None, _read(root))


@pytest.mark.parametrize(("kind", "version", "rel"), SHIPPED, ids=[f"{k}-{r}" for k, _, r in SHIPPED])
def test_no_edit_round_trip_is_byte_identical(tmp_path, kind, version, rel):
    root = pristine_checkout(kind, version)
    out = tmp_path / "out.yaml"
    write_result(compile_yaml(GenRequest(base=str(root / rel), repo=root, output=out)))
    assert out.read_text(encoding="utf-8") == (root / rel).read_text(encoding="utf-8")


@pytest.mark.parametrize(("kind", "version", "base", "after", "head"), [
    ("yolov5", YOLOV5_RELEASE, "yolov5n-seg", 17, [[18, 21, 24], 1, "Segment", ["nc", "anchors", 32, 256]]),
    ("yolov5", YOLOV5_RELEASE, "yolov5s6", 4, [[24, 27, 30, 33], 1, "Detect", ["nc", "anchors"]]),
    ("yolov7", YOLOV7_RELEASE, "yolov7-tiny", 21, [[75, 76, 77], 1, "IDetect", ["nc", "anchors"]]),
    ("yolov7", YOLOV7_RELEASE, "yolov7-e6e", 4, [[258, 259, 260, 261, 262, 263, 264, 265], 1, "IAuxDetect",
                                                 ["nc", "anchors"]]),
], ids=["Segment", "Detect-P6", "IDetect", "IAuxDetect"])
def test_heads_are_renumbered_and_scaling_keys_kept(tmp_path, kind, version, base, after, head):
    root = pristine_checkout(kind, version)
    out = tmp_path / "out.yaml"
    edit = parse_edit("insert-after", f"{after}=nn.Identity")
    write_result(compile_yaml(GenRequest(base=base, edits=[edit], repo=root, output=out)))
    model = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert model["head"][-1] == head
    assert {"depth_multiple", "width_multiple"} <= set(model)
