"""``weights --base`` without torch: a kept row's keys renamed and sorted into carried / shape-mismatched / missing /
unexpected, the freeze option per target, and the command's exits and report for what the runner found."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.runners.yf_basecarry import carry_row, row_of
from yamlforge.runners.yf_layermap import LayerMap
from yamlforge.target_python import RunnerAnswer
from yamlforge.targets import ULTRALYTICS, YOLOV5
from yamlforge.weights.basereport import freeze_text


class Tensor:
    def __init__(self, *shape):
        self.shape = shape


BASE = {"model.5.conv.weight": Tensor(8, 4, 3, 3), "model.5.bn.weight": Tensor(8), "model.5.old.weight": Tensor(2),
        "model.50.conv.weight": Tensor(1), "model.6.conv.weight": Tensor(3)}
NEW = {"model.6.conv.weight": Tensor(8, 4, 3, 3), "model.6.bn.weight": Tensor(16), "model.6.extra.bias": Tensor(8),
       "model.60.conv.weight": Tensor(1)}


def test_a_row_whose_only_fitting_tensor_is_a_step_counter_carries_nothing():
    base = {"model.3.bn.num_batches_tracked": Tensor(), "model.3.conv.weight": Tensor(256, 256, 3, 3)}
    new = {"model.3.bn.num_batches_tracked": Tensor(), "model.3.conv.weight": Tensor(64, 32, 3, 3)}
    report = carry_row(base, new, "model.3.", "model.3.")
    assert not report["carried"] and report["missing"] == ["model.3.bn.num_batches_tracked"]


def test_a_kept_row_moves_to_its_new_index_and_says_what_did_not_fit():
    report = carry_row(BASE, NEW, "model.5.", "model.6.")
    assert report == {"carried": {"model.6.conv.weight": "model.5.conv.weight"},
                      "mismatched": {"model.6.bn.weight": ((8,), (16,))}, "missing": ["model.6.extra.bias"],
                      "unexpected": ["model.5.old.weight"]}


@pytest.mark.parametrize("key,row", [("model.5.conv.weight", 5), ("model.50.x", None), ("other.5.x", None),
                                     ("anchors", None)], ids=["in-row", "another-row", "outside-model", "top-level"])
def test_row_of_a_key(key, row):
    assert row_of(key, {"model.5.": 5}) == row


# (id, target, value, option)
FREEZES = [
    ("ultralytics-count", ULTRALYTICS, 10, "freeze=10"),
    ("ultralytics-list", ULTRALYTICS, [0, 1, 3], "freeze=[0, 1, 3]"),
    ("yolov5-count", YOLOV5, 10, "--freeze 10"),
    ("yolov5-list", YOLOV5, [0, 1, 3], "--freeze 0 1 3"),
    ("one-item-list-is-not-a-count", YOLOV5, [3], "--freeze 3 3"),
]


@pytest.mark.parametrize("target,value,option", [f[1:] for f in FREEZES], ids=[f[0] for f in FREEZES])
def test_freeze_option_in_the_targets_syntax(target, value, option):
    assert freeze_text(value, target.runtime.freeze_syntax) == option


def row(index, status, base=None, carried=0, mismatched=0, missing=0, module="Conv"):
    return {"index": index, "module": module, "base": base, "status": status,
            "carried": {f"model.{index}.c{k}": f"model.{base}.c{k}" for k in range(carried)},
            "mismatched": {f"model.{index}.m{k}": [[2], [3]] for k in range(mismatched)},
            "missing": [f"model.{index}.n{k}" for k in range(missing)], "unexpected": [], "dropped": 0}


def base_answer(rows, mapping, error=None, written="OUT"):
    base = {"checkpoint": "/x/best.pt", "error": error, "hint": "h" if error else None}
    if error is None:
        base.update(map=mapping.to_dict(), map_note=None, rows=rows, outside=[], backbone_rows=2, base_scale="n",
                    removed=[])
    return {"checks": [], "loads": [], "written": written, "notes": [], "base": base}


INSERTED = LayerMap(3, 4, {0: 0, 1: 2, 2: 3})
RUNS = [
    ("carried", base_answer([row(0, "carried", 0, 6), row(1, "new", missing=4), row(2, "carried", 1, 6),
                             row(3, "carried", 2, 4, mismatched=2)], INSERTED), 0,
     (r"warning: layer 3: 2 tensor\(s\) of another shape.*\(nc differs\?\).*freeze: the base's 2 backbone layers "
     r"\(freeze=2 there\) are freeze=\[0, 2\] here.*create .*out.pt \(16 base tensor\(s\)\)")),
    ("another-base", base_answer([row(0, "new", missing=3), row(1, "new", missing=3)], LayerMap(3, 2),
                                 written=None), 2,
     (r"nothing of best.pt fits m.yaml: 0 of its 3 rows are rows of the model, and none of their weights fit: a "
     r"checkpoint of another base model\? Nothing was written")),
    ("another-scale", base_answer([row(0, "carried", 0, mismatched=3), row(1, "carried", 1, 2, mismatched=2)],
                                  LayerMap(2, 2, {0: 0, 1: 1}), written=None), 2,
     (r"none of the 2 rows m.yaml kept from best.pt fits whole, their tensors have another shape: a checkpoint of "
     r"another scale \(it was trained at scale 'n'\)\?")),
    ("unreadable", base_answer([], None, error="best.pt is not a checkpoint torch can read", written=None), 2,
     r"best.pt is not a checkpoint torch can read; nothing was written"),
]


@pytest.mark.parametrize("raw,code,text", [r[1:] for r in RUNS], ids=[r[0] for r in RUNS])
def test_weights_base_exits_and_reports_by_what_the_runner_carried(genyaml_repo, tmp_path, monkeypatch, raw, code,
                                                                   text):
    import yamlforge.weights.load

    (tmp_path / "best.pt").write_bytes(b"")
    (tmp_path / "m.yaml").write_text("nc: 1\n")
    calls = []
    monkeypatch.setattr(yamlforge.weights.load, "run_runner",
                        lambda *a, **k: RunnerAnswer(calls.append(a[1]) or raw, ""))
    result = CliRunner().invoke(app, ["weights", str(tmp_path / "m.yaml"), "--repo", str(genyaml_repo),
                                      "--base", str(tmp_path / "best.pt"), "-o", str(tmp_path / "out.pt")])
    assert result.exit_code == code, result.output
    assert re.search(text, " ".join(result.output.split())), result.output
    assert calls[0][calls[0].index("--base") + 1] == str(tmp_path / "best.pt")


def test_weights_needs_base_or_load(genyaml_repo, tmp_path):
    (tmp_path / "m.yaml").write_text("nc: 1\n")
    result = CliRunner().invoke(app, ["weights", str(tmp_path / "m.yaml"), "--repo", str(genyaml_repo),
                                      "-o", str(tmp_path / "out.pt")])
    assert result.exit_code == 2 and "give --base BASE.pt and/or --load" in result.output


def test_gen_yaml_base_weights_must_exist_and_needs_a_written_file(genyaml_repo, tmp_path):
    missing = CliRunner().invoke(app, ["gen-yaml", "yolov8n", "--repo", str(genyaml_repo), "--insert-after",
                                       "4=nn.Identity", "--base-weights", str(tmp_path / "no.pt")])
    assert missing.exit_code == 2 and "no.pt' does not exist" in missing.output
    (tmp_path / "b.pt").write_bytes(b"")
    dry = CliRunner().invoke(app, ["gen-yaml", "yolov8n", "--repo", str(genyaml_repo), "--insert-after",
                                   "4=nn.Identity", "--dry-run", "--base-weights", str(tmp_path / "b.pt")])
    assert dry.exit_code == 2 and "needs the file written" in dry.output
