"""The per-task batch data of verify's backward check (yf_tasks) and the task line of the report, without torch."""

from __future__ import annotations

import ast

import pytest

from yamlforge.check.verify import Check, VerifyReport, render_report, task_line
from yamlforge.runners import yf_tasks
from yamlforge.runners.yf_tasks import BATCH_PARTS, PARTS, Canvas, Rows, TaskError, task_batch
from yamlforge.scratch import pristine_checkout
from yamlforge.targets import ULTRALYTICS

SHAPES = {"nc": 80, "kpt_shape": None, "mask_ratio": 4, "overlap_mask": True}


def tables_of(version: str) -> dict:
    """The task tables (TASKS, TASK2DATA, TASK2METRIC) a release defines in the module the task_tables fact names."""
    module = pristine_checkout("ultralytics", version) / (ULTRALYTICS.runtime.task_tables.replace(".", "/")
                                                          + "/__init__.py")
    found = {}
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("TASKS", "TASK2DATA", "TASK2METRIC"):
                found[name] = ast.literal_eval(node.value)
    return found


def shape_of(spec) -> tuple[int, ...]:
    if isinstance(spec, Canvas):
        return spec.shape
    shape, value = [], spec.values
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


@pytest.mark.parametrize("version", ["8.0.227", "8.4.190"])
def test_every_task_a_release_ships_has_a_batch(version):
    tables = tables_of(version)
    assert set(tables["TASKS"]) <= set(BATCH_PARTS)
    assert set(tables["TASK2DATA"]) == set(tables["TASK2METRIC"]) == set(tables["TASKS"])


def test_8_4_190_ships_semantic_and_depth_and_8_0_227_no_obb():
    assert {"semantic", "depth", "obb"} <= set(tables_of("8.4.190")["TASKS"])
    assert "obb" not in tables_of("8.0.227")["TASKS"]


def test_every_part_a_task_names_exists():
    assert {part for parts in BATCH_PARTS.values() for part in parts} == set(PARTS)


@pytest.mark.parametrize(("task", "keys"), [
    ("detect", {"batch_idx", "cls", "bboxes"}),
    ("segment", {"batch_idx", "cls", "bboxes", "masks", "sem_masks"}),
    ("pose", {"batch_idx", "cls", "bboxes", "keypoints"}),
    ("obb", {"batch_idx", "cls", "bboxes"}),
    ("classify", {"cls"}),
    ("semantic", {"semantic_mask"}),
    ("depth", {"depth"}),
])
def test_each_task_gets_the_keys_its_loss_reads(task, keys):
    assert set(task_batch(task, 2, 64, {**SHAPES, "kpt_shape": [17, 3]})) == keys


def test_an_unknown_task_is_refused_naming_the_known_ones():
    with pytest.raises(TaskError, match=r"'panoptic' has no synthetic batch .*detect, segment"):
        task_batch("panoptic", 2, 64, SHAPES)


@pytest.mark.parametrize("task", ["detect", "segment", "pose", "obb"])
def test_object_targets_are_two_per_image_indexed_by_image(task):
    batch = task_batch(task, 3, 64, {**SHAPES, "kpt_shape": [17, 3]})
    assert batch["batch_idx"].values == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    assert shape_of(batch["cls"]) == (6, 1)
    assert shape_of(batch["bboxes"]) == (6, 5 if task == "obb" else 4)


def test_classes_stay_below_a_single_class_models_nc():
    """yolov8n-pose has nc 1: a class 1 target was the IndexError of the old detection batch."""
    for task in ("detect", "pose", "classify", "semantic"):
        batch = task_batch(task, 2, 64, {**SHAPES, "nc": 1, "kpt_shape": [17, 3]})
        if "cls" in batch:
            assert {c[0] if isinstance(c, list) else c for c in batch["cls"].values} == {0}
    assert {value for _, value, _ in task_batch("semantic", 2, 64, {**SHAPES, "nc": 1})["semantic_mask"].paints} == {0}


def test_classification_labels_are_one_long_per_image():
    labels = task_batch("classify", 4, 64, {**SHAPES, "nc": 3})["cls"]
    assert labels == Rows("long", [0, 1, 2, 0])


@pytest.mark.parametrize(("kpt_shape", "expected"), [([17, 3], (4, 17, 3)), ([5, 2], (4, 5, 2)), ([1, 3], (4, 1, 3))])
def test_keypoints_follow_the_models_kpt_shape(kpt_shape, expected):
    keypoints = task_batch("pose", 2, 64, {**SHAPES, "kpt_shape": kpt_shape})["keypoints"]
    assert shape_of(keypoints) == expected
    assert all(0 < v <= 1 for obj in keypoints.values for point in obj for v in point)


def test_overlapping_masks_are_one_map_per_image_at_the_mask_ratio():
    masks = task_batch("segment", 2, 64, SHAPES)["masks"]
    assert masks.shape == (2, 16, 16) and masks.background == 0.0
    assert [(i, value) for i, value, _ in masks.paints] == [(0, 1.0), (0, 2.0), (1, 1.0), (1, 2.0)]


def test_masks_without_overlap_are_one_map_per_object():
    masks = task_batch("segment", 2, 64, {**SHAPES, "overlap_mask": False, "mask_ratio": 2})["masks"]
    assert masks.shape == (4, 32, 32)
    assert [(i, value) for i, value, _ in masks.paints] == [(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0)]


def test_rotated_boxes_are_wider_than_the_obb_loss_filter_at_32():
    """The OBB loss drops boxes under 2 pixels on a side; at least one must survive at the smallest size."""
    for _, _, w, h, _ in task_batch("obb", 1, 32, SHAPES)["bboxes"].values:
        assert w * 32 >= 2 and h * 32 >= 2


def test_depth_is_valid_everywhere_and_nearer_on_objects():
    depth = task_batch("depth", 2, 64, SHAPES)["depth"]
    assert depth.shape == (2, 64, 64) and depth.background > max(v for _, v, _ in depth.paints) > 0


@pytest.mark.parametrize(("obj", "side", "box"), [
    ((0.5, 0.5, 0.4, 0.3), 64, (19, 22, 44, 41)),
    ((0.5, 0.5, 0.001, 0.001), 8, (3, 3, 4, 4)),  # never empty
])
def test_pixel_box(obj, side, box):
    assert yf_tasks.pixel_box(obj, side) == box


def test_task_line_names_what_the_target_chose():
    task = {"task": "segment", "model_class": "YOLO", "model": "SegmentationModel", "trainer": "SegmentationTrainer",
            "validator": "SegmentationValidator", "data": "coco8-seg.yaml", "metric": "metrics/mAP50-95(M)"}
    assert task_line(task) == ("task segment: YOLO built SegmentationModel; trainer SegmentationTrainer, validator "
                               "SegmentationValidator, dataset coco8-seg.yaml, metric metrics/mAP50-95(M)")
    bare = {"task": "detect", "model_class": "Fork", "model": "ForkModel", "trainer": None, "validator": None}
    assert task_line(bare) == "task detect: Fork built ForkModel"


def test_the_rendered_report_shows_the_task_line_after_the_import():
    from rich.console import Console

    task = {"task": "pose", "model_class": "YOLO", "model": "PoseModel", "trainer": "PoseTrainer",
            "validator": "PoseValidator", "data": "coco8-pose.yaml", "metric": "metrics/mAP50-95(P)"}
    report = VerifyReport(target={"kind": "ultralytics", "version": "8.4.190", "root": "/r"}, yaml="m.yaml", imgsz=64,
                          batch=2, python="python", checks=[Check("build", "pass", "built PoseModel")], task=task,
                          imported={"package": "ultralytics", "file": "/r/ultralytics/__init__.py"})
    console = Console(record=True, width=200)
    render_report(report, console)
    lines = console.export_text().splitlines()
    assert lines[lines.index("imported ultralytics from /r/ultralytics/__init__.py") + 1] == task_line(task)
    assert VerifyReport.from_runner(report.to_dict()).task == task


def test_detection_labels_keep_their_format():
    assert yf_tasks.box_label(1, (10, 20, 30, 40), 64, {}) == "1 0.390625 0.625000 0.468750 0.625000"


@pytest.mark.parametrize(("cls", "points"), [(0, 4), (1, yf_tasks.ELLIPSE_POINTS)], ids=["rectangle", "ellipse"])
def test_segmentation_labels_outline_the_drawn_shape_inside_its_box(cls, points):
    fields = yf_tasks.polygon_label(cls, (10, 20, 30, 40), 64, {}).split()
    assert fields[0] == str(cls) and len(fields) == 1 + 2 * points
    xs, ys = [float(v) * 64 for v in fields[1::2]], [float(v) * 64 for v in fields[2::2]]
    assert (round(min(xs), 3), round(min(ys), 3), round(max(xs), 3), round(max(ys), 3)) == (10, 20, 40, 60)


def test_rotated_box_labels_are_the_four_corners_for_either_shape():
    for cls in (0, 1):
        assert yf_tasks.corners_label(cls, (16, 32, 16, 8), 64, {}) == (
            f"{cls} 0.250000 0.500000 0.500000 0.500000 0.500000 0.625000 0.250000 0.625000")


@pytest.mark.parametrize(("kpt_shape", "fields"), [([17, 3], 5 + 51), ([4, 2], 5 + 8)])
def test_pose_labels_carry_the_yamls_kpt_shape(kpt_shape, fields):
    label = yf_tasks.keypoints_label(0, (16, 32, 16, 8), 64, {"kpt_shape": kpt_shape}).split()
    assert len(label) == fields
    assert label[:5] == yf_tasks.box_label(0, (16, 32, 16, 8), 64, {}).split()
    assert yf_tasks.DATASETS["pose"].model_keys == ("kpt_shape",)
