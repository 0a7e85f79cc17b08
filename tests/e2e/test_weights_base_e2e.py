"""``yamlforge weights --base`` on real checkouts: a base checkpoint the target's own trainer wrote (one epoch of
``verify --train``) carried into a model gen-yaml edited.

A ZeroResidual block (tests/fixtures/zeroresidual: ``x + proj(...)``, ``proj`` zero at initialisation) inserted
into the base computes what the base computed, so the edited model loaded from OUT.pt must give the base's outputs
exactly when every base tensor landed at its new index. The base is trained once per target (module scope).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_in_checkout
from typer.testing import CliRunner

from yamlforge.check.verify import RUNNER
from yamlforge.cli import app
from yamlforge.modelyaml.base import resolve_base
from yamlforge.scratch import YOLOV5_RELEASE, YOLOV7_RELEASE, YOLOV9_RELEASE, make_checkout, pristine_checkout
from yamlforge.target_python import resolve_python, run_runner
from yamlforge.targets import detect_target

SPEC = Path(__file__).resolve().parents[1] / "fixtures" / "zeroresidual" / "zeroresidual.yaml"
GELAN_C = Path(__file__).resolve().parents[2] / "examples" / "models" / "gelan-c.yaml"
YOLOV9_C = SPEC.parent / "yolov9-c-small.yaml"  # yolov9-c's auxiliary branch and dual head, small widths
NC = 2  # the classes of verify --train's synthetic dataset: the base's head is trained for them
# (kind, version, base, row the block goes after, rows of the base, the edited model's rows)
CASES = [
    ("ultralytics", "8.4.190", "yolov8n", 4, 23, 24),
    ("ultralytics", "8.4.190", "rtdetr-l", 4, 29, 30),
    ("ultralytics", "8.0.227", "yolov8n", 4, 23, 24),
    ("ultralytics", "8.0.227", "rtdetr-l", 4, 29, 30),
    ("yolov9", YOLOV9_RELEASE, GELAN_C, 4, 23, 24),
    ("yolov9", YOLOV9_RELEASE, YOLOV9_C, 4, 39, 40),
    ("yolov5", YOLOV5_RELEASE, "yolov5s", 4, 25, 26),
    ("yolov7", YOLOV7_RELEASE, "yolov7-tiny", 4, 78, 79),
]
# 8.0's RT-DETR decoder picks its 300 queries among the anchors: 336 at 128 px, too few below
IMGSZ = {("8.0.227", "rtdetr-l"): 128}
# How each target's own code loads a checkpoint into a model (what predict / val / detect.py use)
LOADERS = {
    # 8.4 renamed attempt_load_one_weight to load_checkpoint
    "ultralytics": "from ultralytics.nn import tasks\n"
                   "def load(path):\n"
                   "    return (getattr(tasks, 'load_checkpoint', None) or tasks.attempt_load_one_weight)(path)[0]\n",
    # the target's checkpoint_loader (models.experimental:attempt_load, yolov5.models... in a packaged root)
    "script": "import importlib\n"
              "module, _, name = {checkpoint_loader!r}.partition(':')\n"
              "def load(path):\n    return getattr(importlib.import_module(module), name)(path, torch.device('cpu'))\n",
}
COMPARE = """
import os
os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"  # 8.4's restricted unpickler; the other targets ignore it
os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # their loaders predate torch's weights_only default
import json, sys, torch
sys.path.insert(0, {path_entry!r})
{loader}
def flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for item in (out or []) for t in flat(item)]

torch.manual_seed(0)
x = torch.rand(2, 3, {imgsz}, {imgsz})
with torch.no_grad():
    base = flat(load({base!r}).float().eval()(x))
    edited = flat(load({out!r}).float().eval()(x))
assert [t.shape for t in base] == [t.shape for t in edited], ([t.shape for t in base], [t.shape for t in edited])
print(json.dumps(max((a - b).abs().max().item() for a, b in zip(base, edited))))
"""


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``trained(kind, version, base)`` -> (checkout with ZeroResidual applied, BASE.pt its trainer wrote), once."""
    made: dict = {}

    def get(kind: str, version: str, base):
        if (kind, version) not in made:
            # a packaged YOLOv5/YOLOv7 root keeps its package's name, as its imports require
            repo = make_checkout(kind, version, tmp_path_factory.mktemp(kind) / pristine_checkout(kind, version).name)
            result = cli("apply", "--repo", repo, "--module", "ZeroResidual", "--spec", SPEC)
            assert result.exit_code == 0, result.output
            made[kind, version] = repo
        repo = made[kind, version]
        if (kind, version, str(base)) not in made:
            target = detect_target(repo)
            workdir = tmp_path_factory.mktemp(f"train-{kind}-{version}-{Path(str(base)).stem}")
            args = ["--mode", "verify", "--yaml",
                    str(resolve_base(str(base), target).path if kind != "ultralytics" else f"{base}.yaml"),
                    "--imgsz", str(IMGSZ.get((version, base), 32)), "--batch", "2", "--train"]
            answer = run_runner(RUNNER, args, python=resolve_python(None), timeout=1800, target=target, workdir=workdir)
            assert answer.ok and answer.data.get("train"), (answer.data, answer.tail(40))
            made[kind, version, str(base)] = Path(answer.data["train"]["weights"])
        return repo, made[kind, version, str(base)]

    return get


@pytest.fixture(scope="module")
def carried(trained, tmp_path_factory):
    """``carried(kind, version, base, after)`` -> (repo, BASE.pt, the model with ZeroResidual after row ``after``,
    OUT.pt that ``weights --base`` wrote for it, its report), once: the identity and the training tests share it."""
    made: dict = {}

    def get(kind: str, version: str, base, after: int):
        key = (kind, version, str(base), after)
        if key not in made:
            repo, base_pt = trained(kind, version, base)
            folder = tmp_path_factory.mktemp(f"carried-{kind}-{version}-{Path(str(base)).stem}")
            model = edited(repo, base, after, folder / "edited.yaml", "--nc", NC)
            out = folder / "edited.pt"
            result = cli("weights", model, "--repo", repo, "--base", base_pt, "-o", out, "--json")
            assert result.exit_code == 0, result.output
            made[key] = repo, base_pt, model, out, json.loads(result.stdout)["base"]
        return made[key]

    return get


def edited(repo: Path, base, after: int, out: Path, *options) -> Path:
    result = cli("gen-yaml", base, "--repo", repo, "--insert-after", f"{after}=ZeroResidual", "--spec", SPEC,
                 "-o", out, *options)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("kind,version,base,after,base_rows,new_rows", CASES,
                         ids=[f"{k}-{v}-{Path(str(b)).stem}" for k, v, b, *_ in CASES])
def test_edited_model_from_out_pt_computes_what_the_base_computed(carried, kind, version, base, after, base_rows,
                                                                  new_rows):
    repo, base_pt, _, out, report = carried(kind, version, base, after)
    rows = {row["index"]: row for row in report["rows"]}
    assert len(rows) == new_rows and report["map"]["base_rows"] == base_rows and report["map_note"] is None
    assert [i for i, row in rows.items() if row["status"] != "carried"] == [after + 1]
    assert rows[after + 1]["status"] == "new" and rows[after + 1]["missing"]
    assert all(not row["mismatched"] and not row["missing"] for i, row in rows.items() if i != after + 1)
    assert {row["base"]: i for i, row in rows.items() if row["base"] is not None} == \
        {b: b + (b > after) for b in range(base_rows)}
    frozen = [b + (b > after) for b in range(report["backbone_rows"])]  # the base's backbone, where it is now
    assert report["freeze"]["value"] == (len(frozen) if frozen == list(range(len(frozen))) else frozen)
    facts = detect_target(repo).runner_facts()
    loader = LOADERS["ultralytics" if kind == "ultralytics" else "script"].format(**facts)
    code = COMPARE.format(loader=loader, base=str(base_pt), out=str(out), imgsz=IMGSZ.get((version, base), 64),
                          path_entry=facts["path_entry"])
    worst = json.loads(run_in_checkout(repo, code).stdout.strip().splitlines()[-1])
    assert worst <= 1e-6


# One per target's trainer: Ultralytics' (both API generations), YOLOv9's, YOLOv5's and YOLOv7's train.py
TRAINERS = [case for case in CASES if case[2] != "rtdetr-l"]


@pytest.mark.parametrize("kind,version,base,after,base_rows,new_rows", TRAINERS,
                         ids=[f"{k}-{v}-{Path(str(b)).stem}" for k, v, b, *_ in TRAINERS])
def test_training_from_out_pt_transfers_every_carried_tensor(carried, kind, version, base, after, base_rows,
                                                             new_rows):
    """``verify --train --weights OUT.pt``: one epoch with the target's own trainer started from OUT.pt
    (Ultralytics ``YOLO(yaml).load(OUT.pt).train()``, ``train.py --cfg yaml --weights OUT.pt``), whose own
    "Transferred N/M items" must count every tensor of the model; only what the trainer itself rebuilds from
    the YAML is left out (train.py --cfg drops the anchors)."""
    repo, _, model, out, report = carried(kind, version, base, after)
    keys = [key for row in report["rows"] for key in row["carried"]]
    run = cli("verify", model, "--repo", repo, "--imgsz", IMGSZ.get((version, base), 32), "--train", "--weights",
              out, "--json")
    report = json.loads(run.stdout)
    assert report["ok"], [c for c in report["checks"] if c["status"] == "fail"]
    moved = report["train"]["transferred"]
    print(f"{kind} {version} {Path(str(base)).stem}: transferred {moved['items']}/{moved['of']}, "
          f"carried {len(keys)}")
    rebuilt = [key for key in keys if "anchor" in key] if kind != "ultralytics" else []
    assert moved["from"] == str(out.resolve()) and len(keys) > 300
    assert moved["items"] == moved["of"] - len(rebuilt) >= len(keys) - len(rebuilt)
    train = next(c for c in report["checks"] if c["name"] == "train")
    assert f"from edited.pt it transferred {moved['items']}/{moved['of']} items" in train["message"]


def weights_fails(repo, model, base, out):
    result = cli("weights", model, "--repo", repo, "--base", base, "-o", out)
    assert result.exit_code == 2, result.output
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    return " ".join(result.output.split())


def test_bad_bases_and_models_are_one_line_exit_2_and_nothing_written(trained, tmp_path):
    repo, base_pt = trained("ultralytics", "8.4.190", "yolov8n")
    _, rtdetr_pt = trained("ultralytics", "8.4.190", "rtdetr-l")
    model = edited(repo, "yolov8n", 4, tmp_path / "yolov8n-zr.yaml", "--nc", NC)
    out = tmp_path / "out.pt"
    assert "of its 29 rows are rows of the model, and none of their weights fit: a checkpoint of another base " \
           "model?" in weights_fails(repo, model, rtdetr_pt, out)
    wider = edited(repo, "yolov8s", 4, tmp_path / "yolov8s-zr.yaml", "--nc", NC)
    assert "fits whole, their tensors have another shape: a checkpoint of another scale (it was trained at scale " \
           "'n')?" in \
        weights_fails(repo, wider, base_pt, out)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    assert "notes.pt is not a checkpoint torch can read" in weights_fails(repo, model, text, out)
    broken = tmp_path / "broken.yaml"
    broken.write_text(model.read_text().replace("ZeroResidual", "NoSuchBlock"))
    assert "layer 5: module NoSuchBlock is not known to" in weights_fails(repo, broken, base_pt, out)


def test_a_checkpoint_of_another_family_is_refused(trained, tmp_path):
    """A YOLOv5 checkpoint pickles YOLOv5's classes, which an Ultralytics checkout does not have."""
    _, yolov5_pt = trained("yolov5", YOLOV5_RELEASE, "yolov5s")
    repo, _ = trained("ultralytics", "8.4.190", "yolov8n")
    model = edited(repo, "yolov8n", 4, tmp_path / "yolov8n-zr.yaml", "--nc", NC)
    assert "is a checkpoint of another model family" in weights_fails(repo, model, yolov5_pt, tmp_path / "out.pt")


# (id, gen-yaml edits, rows by status, a base row -> its new row)
EDITS = [
    ("replace", ("--replace", "4=C3(256)"), {"carried": 22, "replaced": 1}, (5, 5)),
    ("remove", ("--remove", "9"), {"carried": 22}, (10, 9)),
    ("insert-before", ("--insert-before", "6=ZeroResidual"), {"carried": 23, "new": 1}, (6, 7)),
    ("replace-all", ("--replace-all", "C2f=C3"), {"carried": 15, "replaced": 8}, (22, 22)),
]


@pytest.mark.parametrize("edits,statuses,pair", [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_every_edit_carries_the_rows_the_layer_map_keeps(trained, tmp_path, edits, statuses, pair):
    repo, base_pt = trained("ultralytics", "8.4.190", "yolov8n")
    model = tmp_path / "edited.yaml"
    made = cli("gen-yaml", "yolov8n", "--repo", repo, *edits, "--spec", SPEC, "--nc", NC, "-o", model)
    assert made.exit_code == 0, made.output
    result = cli("weights", model, "--repo", repo, "--base", base_pt, "-o", tmp_path / "out.pt", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["base"]
    rows = report["rows"]
    assert {s: sum(r["status"] == s for r in rows) for s in statuses} == statuses
    assert len(rows) == sum(statuses.values())
    assert next(r["index"] for r in rows if r["base"] == pair[0]) == pair[1]
    # a row kept unchanged gets every tensor of its base row: the edits keep the widths
    assert all(r["carried"] and not r["mismatched"] and not r["missing"] for r in rows
               if r["status"] == "carried" and r["module"] not in ("Concat", "nn.Upsample"))
    assert all(r["dropped"] for r in rows if r["status"] == "replaced")


def test_backbone_swap_takes_the_official_backbone_and_the_base_head(trained, tmp_path):
    """--backbone with RevCol's official weights (--load) and the trained RT-DETR's head (--base) in one run."""
    from parity import PARITY_DIR

    repo, base_pt = trained("ultralytics", "8.4.190", "rtdetr-l")
    assert cli("apply", "--repo", repo, "--module", "RevCol").exit_code == 0
    model = tmp_path / "rtdetr-l-revcol.yaml"
    made = cli("gen-yaml", "rtdetr-l", "--repo", repo, "--backbone",
               "revcol_custom(True, 0.0, [32, 64, 96, 128], [1, 2, 2, 1], 3, 3)", "--nc", NC, "-o", model)
    assert made.exit_code == 0, made.output
    out = tmp_path / "out.pt"
    result = cli("weights", model, "--repo", repo, "--base", base_pt, "--load", f"RevCol={PARITY_DIR / 'revcol.pt'}",
                 "-o", out, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    rows = answer["base"]["rows"]
    assert [r["status"] for r in rows] == ["new"] + ["carried"] * 19 and len(answer["base"]["removed"]) == 10
    assert [(layer["index"], len(layer["matched"])) for layer in answer["loads"][0]["layers"]] == [(0, 238)]
    assert answer["base"]["freeze"]["value"] == 0  # none of the base's backbone is left to freeze
    assert out.is_file() and answer["written"] == str(out)


def test_gen_yaml_base_weights_writes_the_checkpoint_next_to_the_yaml_and_trains_from_it(trained, tmp_path):
    """One command: the edited YAML, OUT.pt next to it, and the smoke epoch (RT-DETR's trainer) started from it."""
    repo, base_pt = trained("ultralytics", "8.4.190", "rtdetr-l")
    result = cli("gen-yaml", "rtdetr-l", "--repo", repo, "--insert-after", "4=ZeroResidual", "--spec", SPEC, "--nc",
                 NC, "-o", tmp_path / "rtdetr-l-zr.yaml", "--base-weights", base_pt, "--train", "--imgsz", 32)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rtdetr-l-zr.pt").is_file()
    moved = re.search(r"from rtdetr-l-zr\.pt it transferred (\d+)/(\d+) items", result.output)
    assert moved and moved.group(1) == moved.group(2), result.output[-3000:]


# (base, the head's row in the base): a segmentation and a pose model of 8.4, trained by their own task's trainer
TASK_BASES = [("yolo11n-seg", 23), ("yolov8n-pose", 22)]


@pytest.mark.parametrize("base,head", TASK_BASES, ids=[b for b, _ in TASK_BASES])
def test_task_model_from_out_pt_computes_what_the_base_computed(trained, tmp_path, base, head):
    """The identity block in a segmentation and a pose model: masks, prototypes and keypoints as the base's."""
    repo, base_pt = trained("ultralytics", "8.4.190", base)
    model = edited(repo, base, 4, tmp_path / "edited.yaml", "--nc", NC)
    out = tmp_path / "edited.pt"
    result = cli("weights", model, "--repo", repo, "--base", base_pt, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["base"]["rows"]
    assert [row["index"] for row in rows if row["status"] != "carried"] == [5]
    assert all(not row["mismatched"] and not row["missing"] for row in rows if row["index"] != 5)
    facts = detect_target(repo).runner_facts()
    code = COMPARE.format(loader=LOADERS["ultralytics"], base=str(base_pt), out=str(out), imgsz=64,
                          path_entry=facts["path_entry"])
    assert json.loads(run_in_checkout(repo, code).stdout.strip().splitlines()[-1]) <= 1e-6


def other_head(model: Path, base: str) -> str:
    """The model's YAML with a head of another shape: three classes for segmentation, five keypoints for pose."""
    text = model.read_text()
    if "kpt_shape" in text:
        changed = re.sub(r"kpt_shape: \[\d+, *(\d)\]", r"kpt_shape: [5, \1]", text)
    else:
        changed = re.sub(r"^nc: \d+", "nc: 3", text, flags=re.M)
    assert changed != text, text[:600]
    model.write_text(changed)
    return "kpt_shape" if "kpt_shape" in text else "nc"


@pytest.mark.parametrize("base,head", TASK_BASES, ids=[b for b, _ in TASK_BASES])
def test_a_head_of_another_nc_or_kpt_shape_is_mismatched_and_the_rest_carried(trained, tmp_path, base, head):
    repo, base_pt = trained("ultralytics", "8.4.190", base)
    model = edited(repo, base, 4, tmp_path / "edited.yaml", "--nc", NC)
    changed = other_head(model, base)
    out = tmp_path / "edited.pt"
    result = cli("weights", model, "--repo", repo, "--base", base_pt, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    rows = {row["index"]: row for row in json.loads(result.stdout)["base"]["rows"]}
    new_head = rows[head + 1]
    assert new_head["base"] == head and new_head["mismatched"] and new_head["carried"]
    # only the head's last convolutions of the branch that changed: classes (cv3) or keypoints (cv4)
    branch = {"nc": ".cv3.", "kpt_shape": ".cv4."}[changed]
    assert all(branch in key for key in new_head["mismatched"]), new_head["mismatched"]
    assert all(not row["mismatched"] and not row["missing"] for i, row in rows.items() if i not in (5, head + 1))
    assert out.is_file()
