"""The smoke training's synthetic dataset in each task's layout (yf_tasks.DATASETS written by yf_train.make_dataset),
the open-vocabulary facts verify reads from a model, and the task apply --verify's probe proves; no torch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from yamlforge.check.probe import PROBE_TASK, probe_scope
from yamlforge.resources import TEMPLATES_DIR
from yamlforge.runners import yf_tasks
from yamlforge.runners.yf_tasks import BATCH_PARTS, DATASETS
from yamlforge.runners.yf_train import SMOKE_IMAGES, dataset_images, make_dataset
from yamlforge.scratch import pristine_checkout

IMGSZ = 64


def test_every_task_with_a_dataset_has_a_batch():
    assert set(DATASETS) <= set(BATCH_PARTS)


@pytest.mark.parametrize("task", ["detect", "segment", "obb"])
def test_label_line_tasks_write_a_dataset_yaml_and_one_label_file_per_image(tmp_path, task):
    data = make_dataset(tmp_path, IMGSZ, task=task)
    spec = json.loads(data.read_text())
    assert (spec["nc"], spec["names"]) == (2, ["rectangle", "ellipse"])
    images = dataset_images(tmp_path)
    assert len(images) == SMOKE_IMAGES and spec["train"] == spec["val"] == str(images[0].parent)
    assert sorted(p.stem for p in (tmp_path / "labels" / "train").iterdir()) == sorted(p.stem for p in images)


def test_pose_dataset_repeats_the_models_kpt_shape(tmp_path):
    data = make_dataset(tmp_path, IMGSZ, task="pose", model_yaml={"kpt_shape": [4, 2]})
    assert json.loads(data.read_text())["kpt_shape"] == [4, 2]
    first = (tmp_path / "labels" / "train" / "im0.txt").read_text().splitlines()[0].split()
    assert len(first) == 5 + 4 * 2


def test_detection_images_and_labels_do_not_depend_on_the_task_layouts(tmp_path):
    """The same seed draws the same shapes for every label-line task (studies compare runs on this set)."""
    make_dataset(tmp_path / "detect", IMGSZ, task="detect")
    make_dataset(tmp_path / "segment", IMGSZ, task="segment")
    for stem in ("im0", f"im{SMOKE_IMAGES - 1}"):
        boxes = [line.split()[0] for line in (tmp_path / "detect/labels/train" / f"{stem}.txt").read_text().split("\n")
                 if line]
        polygons = [line.split()[0] for line in (tmp_path / "segment/labels/train" / f"{stem}.txt").read_text()
                    .split("\n") if line]
        assert boxes == polygons


def test_classification_is_one_folder_per_class_in_train_and_val_and_the_folder_is_the_data(tmp_path):
    assert make_dataset(tmp_path, IMGSZ, task="classify") == tmp_path
    for split in ("train", "val"):
        assert sorted(p.name for p in (tmp_path / split).iterdir()) == ["ellipse", "rectangle"]
    images = dataset_images(tmp_path)
    assert len(images) == SMOKE_IMAGES and all(p.parts[-3] == "train" for p in images)
    assert sum(1 for p in images if p.parent.name == "rectangle") == SMOKE_IMAGES // 2


def test_semantic_masks_are_class_id_pngs_with_the_background_as_the_last_class(tmp_path):
    spec = json.loads(make_dataset(tmp_path, IMGSZ, task="semantic").read_text())
    assert spec["masks_dir"] == "masks" and spec["names"] == ["rectangle", "ellipse", "background"]
    for image in dataset_images(tmp_path):
        mask = cv2.imread(str(tmp_path / "masks" / "train" / f"{image.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.shape == (IMGSZ, IMGSZ)
        assert set(np.unique(mask)) <= {0, 1, 2} and 2 in mask and len(np.unique(mask)) > 1


def test_depth_maps_are_uint16_pngs_in_the_datasets_scale_nearer_on_shapes(tmp_path):
    spec = json.loads(make_dataset(tmp_path, IMGSZ, task="depth").read_text())
    assert spec["depth_scale"] == yf_tasks.DEPTH_SCALE and spec["nc"] == 1
    depth = cv2.imread(str(tmp_path / "depth" / "train" / "im0.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (IMGSZ, IMGSZ)
    metres = set(np.unique(depth) / spec["depth_scale"])
    assert max(metres) == 4.0 and min(metres) >= 1.0 and len(metres) > 1


def test_the_encoder_name_is_read_from_yolo_worlds_own_get_text_pe():
    source = (pristine_checkout("ultralytics", "8.4.190") / "ultralytics/nn/tasks.py").read_text()
    body = source[source.index("class WorldModel"):source.index("class YOLOEModel")]
    assert yf_tasks.ENCODER_NAME.findall(body) == ["clip:ViT-B/32", "clip:ViT-B/32"]
    assert f"def {yf_tasks.TEXT_ENCODER_METHOD}(" in body


def test_stored_embeddings_of_a_closed_vocabulary_model_are_none():
    assert yf_tasks.stored_embeddings(object(), 2) == {}
    assert yf_tasks.text_encoder(object()) is None


def test_every_probe_template_ends_in_a_head_of_the_probe_task():
    heads = {re.search(r"1, (\w+), \[nc", path.read_text()).group(1)
             for path in Path(TEMPLATES_DIR).glob("probe_model.*.yaml.j2") if "block head" in path.read_text()}
    assert heads == {"Detect", "IDetect", "DDetect"} and PROBE_TASK == "detect"


def test_the_probe_says_which_task_it_proves_and_how_to_prove_another():
    assert probe_scope(["SHSA", "CBAM"]) == (
        "apply --verify proves SHSA, CBAM in a detect model (the probe); for segment, pose, obb, classify or another "
        "task: yamlforge gen-yaml BASE --insert-after N=SHSA --verify (BASE: that task's model, e.g. yolo11n-seg)")
