"""What a study knows of each task, as data: the task a base model is, what its dataset's labels must hold, and
which columns of the trainer's ``results.csv`` are the task's metric.

Task names are the targets' own (Ultralytics' ``TASKS``); the metric columns are the ones each trainer writes: the
first pair of a task's entry is Ultralytics' (its ``TASK2METRIC`` names the metric), the others are the YOLOv5/v9
``train.py`` scripts'. Nothing here imports the target: a plan is checked before any trainer runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..errors import YamlforgeError
from ..targets import TASK_SUFFIXES

DEFAULT_TASK = "detect"
# (metric, mAP50) columns of each task's results.csv, as the trainers name them; a file is read with the first pair
# it has. YOLOv5/v9's detection columns have no box suffix; their segmentation ones name boxes (B) and masks (M).
# Tasks without an mAP50 give their second figure in its place (top-5 accuracy, pixel accuracy, delta2).
METRIC_COLUMNS = {
    "detect": (("metrics/mAP50-95(B)", "metrics/mAP50(B)"), ("metrics/mAP_0.5:0.95", "metrics/mAP_0.5")),
    "segment": (("metrics/mAP50-95(M)", "metrics/mAP50(M)"), ("metrics/mAP_0.5:0.95(M)", "metrics/mAP_0.5(M)")),
    "pose": (("metrics/mAP50-95(P)", "metrics/mAP50(P)"),),
    "obb": (("metrics/mAP50-95(B)", "metrics/mAP50(B)"),),
    "classify": (("metrics/accuracy_top1", "metrics/accuracy_top5"),),
    "semantic": (("metrics/mIoU", "metrics/pixel_acc"),),
    "depth": (("metrics/delta1", "metrics/delta2"),),
}
# The head module of a model YAML's last layer names its task, as Ultralytics' guess_model_task reads it (the
# first word the lower-cased name contains): Segment, DSegment, DualDDetect, Pose, OBB, Classify
HEAD_WORDS = (("segment", "segment"), ("pose", "pose"), ("obb", "obb"), ("classify", "classify"),
              ("detect", "detect"))
# What a task's labels need beyond boxes (class x y w h): outlines (class x1 y1 x2 y2 ...) or a dataset YAML key
OUTLINE_TASKS = frozenset({"segment", "obb"})
DATASET_KEYS = {"pose": "kpt_shape"}
IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})
LABELS_READ = 20  # label files a plan reads to tell boxes from outlines


def model_task(name: str, yaml_text: str) -> str | None:
    """The task of a base model: its name's task suffix (``yolov8n-seg``), else its head's name; None: neither
    says."""
    for part in re.findall(r"-([a-z]+)", Path(name).stem.lower()):
        if part in TASK_SUFFIXES:
            return TASK_SUFFIXES[part]
    raw = yaml.safe_load(yaml_text) or {}
    layers = (raw.get("head") or []) or (raw.get("backbone") or [])
    head = str(layers[-1][2]).lower() if layers and len(layers[-1]) > 2 else ""
    return next((task for word, task in HEAD_WORDS if word in head), None)


# The table's names of each task's two figures (the columns above, without the trainers' prefixes and suffixes)
METRIC_LABELS = {"detect": ("mAP50-95", "mAP50"), "segment": ("mask mAP50-95", "mask mAP50"),
                 "pose": ("pose mAP50-95", "pose mAP50"), "obb": ("mAP50-95", "mAP50"), "classify": ("top-1", "top-5"),
                 "semantic": ("mIoU", "pixel acc"), "depth": ("delta1", "delta2")}


def metric_labels(task: str | None) -> tuple[str, str]:
    return METRIC_LABELS.get(task or DEFAULT_TASK, METRIC_LABELS[DEFAULT_TASK])


def metric_columns(task: str | None, header: list[str]) -> tuple[str, str] | None:
    """The (metric, mAP50) columns of ``task`` in a results.csv with ``header`` (names stripped); None: it has
    neither pair."""
    pairs = METRIC_COLUMNS.get(task or DEFAULT_TASK, METRIC_COLUMNS[DEFAULT_TASK])
    return next((pair for pair in pairs if pair[0] in header), None)


def check_data_task(task: str | None, data: Path, raw: dict) -> None:
    """Refuse a dataset whose labels cannot train ``task`` (a detection dataset for a -seg base), in one line. Only
    what the files show is refused: labels that cannot be found are the trainer's to report."""
    if task in DATASET_KEYS and DATASET_KEYS[task] not in raw:
        raise YamlforgeError(f"the dataset YAML has no '{DATASET_KEYS[task]}': a {task} model trains on a {task} "
                             "dataset", where=str(data), hint=f"use a {task} dataset, or a base of its task")
    if task not in OUTLINE_TASKS:
        return
    lines = [line.split() for path in label_files(data, raw) for line in _lines(path)]
    if lines and all(len(values) == 5 for values in lines):
        raise YamlforgeError(f"the dataset's labels are boxes (class x y w h) and a {task} model trains on "
                             "outlines (class x1 y1 x2 y2 ...): a detection dataset for a "
                             f"{task} base", where=str(data),
                             hint=f"use a {task} dataset, or the detection model of this base")


def label_files(data: Path, raw: dict) -> list[Path]:
    """The first label files of the ``val`` split (the trainers' rule: ``images/`` -> ``labels/``, ``.txt``)."""
    root = Path(str(raw.get("path") or data.parent)).expanduser()
    if not root.is_absolute():
        root = next((base / root for base in (Path.cwd(), data.parent) if (base / root).is_dir()), data.parent / root)
    images: list[Path] = []
    for entry in raw["val"] if isinstance(raw["val"], list) else [raw["val"]]:
        path = root / str(entry)
        if path.is_dir():
            images += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:LABELS_READ]
        elif path.suffix == ".txt" and path.is_file():
            images += [root / line.strip() for line in _lines(path)[:LABELS_READ]]
    labels = [_label_of(image) for image in images[:LABELS_READ]]
    return [label for label in labels if label.is_file()]


def _label_of(image: Path) -> Path:
    parts = list(image.parts)
    if "images" in parts:
        at = len(parts) - 1 - parts[::-1].index("images")
        parts[at] = "labels"
    return Path(*parts).with_suffix(".txt")


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError):
        return []
