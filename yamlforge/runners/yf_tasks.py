"""Runs inside the target's Python: the task a model is, as the target's own wrapper decides it, the batch its
loss reads and the dataset layout its trainer reads.

The task is never guessed here: the wrapper the target's entry point picks (``YOLO``, ``RTDETR``, ``YOLOWorld``,
``YOLOE``, a fork's own class) runs its ``guess_model_task`` on the YAML and maps the task to a model class, trainer
and validator through its ``task_map``; :func:`describe` reports what it chose, with the task's dataset and metric
from the target's own tables (``TASK2DATA``, ``TASK2METRIC``). What differs per task here is data keyed by the
target's task names (:data:`BATCH_PARTS`), filled with the shapes the built model has (``nc``, ``kpt_shape``) and
the mask layout its hyperparameters ask for; :func:`task_batch` is pure Python, :func:`to_tensors` makes it torch.
The smoke training's dataset per task is data too (:data:`DATASETS`: label lines, label images or class folders, as
the targets' loaders read them). An open-vocabulary model (one that encodes class names with a text encoder, a
download) is checked on the class embeddings it stores (:func:`stored_embeddings`), and says what that leaves out.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable
from typing import NamedTuple

# Every image of the synthetic batch holds these objects: normalised centre x, y, width, height and an angle in
# radians (rotated boxes). Both are large enough to survive the OBB loss's filter of boxes under 2 pixels at imgsz 32.
OBJECTS = ((0.5, 0.5, 0.4, 0.3, 0.3), (0.3, 0.6, 0.2, 0.4, -0.5))


class Rows(NamedTuple):
    """A tensor given by its values (nested lists)."""

    dtype: str  # "float" or "long"
    values: list


class Canvas(NamedTuple):
    """A tensor of ``shape`` filled with ``background``, then each ``(index, value, (x0, y0, x1, y1))`` painted
    over the pixel rectangle of ``tensor[index]``."""

    dtype: str
    shape: tuple[int, ...]
    background: float
    paints: tuple[tuple[int, float, tuple[int, int, int, int]], ...]


class TaskError(ValueError):
    """The target names a task this runner has no batch for."""


def pixel_box(obj: tuple, side: int) -> tuple[int, int, int, int]:
    """An object's box in whole pixels of a ``side`` x ``side`` map (at least one pixel)."""
    x, y, w, h = obj[:4]
    x0, y0 = int((x - w / 2) * side), int((y - h / 2) * side)
    return x0, y0, max(x0 + 1, int((x + w / 2) * side)), max(y0 + 1, int((y + h / 2) * side))


def objects(images: int, nc: int) -> list[tuple[int, int, tuple]]:
    """``(image index, class, object)`` for every object of the batch, image by image; classes cycle within nc."""
    return [(i, k % nc, obj) for i in range(images) for k, obj in enumerate(OBJECTS)]


def boxes(images: int, imgsz: int, shapes: dict) -> dict:
    """Detection targets: per-object image index, class and normalised xywh (the loaders' collate layout)."""
    found = objects(images, shapes["nc"])
    return {"batch_idx": Rows("float", [float(i) for i, _, _ in found]),
            "cls": Rows("float", [[float(c)] for _, c, _ in found]),
            "bboxes": Rows("float", [list(obj[:4]) for _, _, obj in found])}


def rotated_boxes(images: int, imgsz: int, shapes: dict) -> dict:
    """Rotated-box targets: normalised xywh and the angle (xywhr)."""
    return {**boxes(images, imgsz, shapes),
            "bboxes": Rows("float", [list(obj) for _, _, obj in objects(images, shapes["nc"])])}


def instance_masks(images: int, imgsz: int, shapes: dict) -> dict:
    """Instance masks at the training mask resolution: with ``overlap_mask`` one map per image holding object k as
    k + 1, else one map per object; and the per-pixel class map the 8.4 semantic branch reads (``sem_masks``)."""
    side = imgsz // shapes["mask_ratio"]
    found = objects(images, shapes["nc"])
    if shapes["overlap_mask"]:
        paints = tuple((i, float(k % len(OBJECTS) + 1), pixel_box(obj, side)) for k, (i, _, obj) in enumerate(found))
        masks = Canvas("float", (images, side, side), 0.0, paints)
    else:
        masks = Canvas("float", (len(found), side, side), 0.0,
                       tuple((k, 1.0, pixel_box(obj, side)) for k, (_, _, obj) in enumerate(found)))
    classes = Canvas("float", (images, side, side), 0.0, tuple((i, float(c), pixel_box(obj, side))
                                                              for i, c, obj in found))
    return {"masks": masks, "sem_masks": classes}


def keypoints(images: int, imgsz: int, shapes: dict) -> dict:
    """``kpt_shape`` keypoints per object, normalised, spread over the object's box diagonal, all visible."""
    count, dims = shapes["kpt_shape"]
    rows = []
    for _, _, (x, y, w, h, _) in objects(images, shapes["nc"]):
        points = []
        for j in range(count):
            t = (j + 0.5) / count - 0.5
            points.append([x + w * t * 0.8, y + h * t * 0.8, 1.0][:dims])
        rows.append(points)
    return {"keypoints": Rows("float", rows)}


def image_labels(images: int, imgsz: int, shapes: dict) -> dict:
    """One class index per image."""
    return {"cls": Rows("long", [i % shapes["nc"] for i in range(images)])}


def semantic_mask(images: int, imgsz: int, shapes: dict) -> dict:
    """A class index per pixel at the input size: the objects' classes on class 0."""
    paints = tuple((i, c, pixel_box(obj, imgsz)) for i, c, obj in objects(images, shapes["nc"]))
    return {"semantic_mask": Canvas("long", (images, imgsz, imgsz), 0, paints)}


def depth_map(images: int, imgsz: int, shapes: dict) -> dict:
    """Depth in metres per pixel at the input size: objects nearer than a background at 4 m, every pixel valid."""
    return {"depth": Canvas("float", (images, imgsz, imgsz), 4.0,
                            tuple((i, 1.0 + k % len(OBJECTS), pixel_box(obj, imgsz))
                                  for k, (i, _, obj) in enumerate(objects(images, 1))))}


PARTS = {"boxes": boxes, "rotated_boxes": rotated_boxes, "instance_masks": instance_masks, "keypoints": keypoints,
         "image_labels": image_labels, "semantic_mask": semantic_mask, "depth_map": depth_map}
# What each task's loss reads besides the images, keyed by the task names the targets use (Ultralytics' TASKS).
BATCH_PARTS = {
    "detect": ("boxes",),
    "segment": ("boxes", "instance_masks"),
    "pose": ("boxes", "keypoints"),
    "obb": ("rotated_boxes",),
    "classify": ("image_labels",),
    "semantic": ("semantic_mask",),
    "depth": ("depth_map",),
}


def task_batch(task: str, images: int, imgsz: int, shapes: dict) -> dict:
    """The targets of a batch of ``images`` for ``task``'s loss, as :class:`Rows` and :class:`Canvas` values."""
    if task not in BATCH_PARTS:
        raise TaskError(f"the target's task {task!r} has no synthetic batch in yamlforge "
                        f"(it has one for {', '.join(BATCH_PARTS)})")
    batch: dict = {}
    for part in BATCH_PARTS[task]:
        batch.update(PARTS[part](images, imgsz, shapes))
    return batch


def model_shapes(model) -> dict:
    """What the batch depends on, read from the built model: its head's ``nc`` and ``kpt_shape`` (its YAML's where
    the head keeps none) and the mask layout of its hyperparameters (``model.args``)."""
    head = model.model[-1]
    args = model.args
    value = args.get if isinstance(args, dict) else lambda key, default: getattr(args, key, default)
    return {"nc": int(getattr(head, "nc", None) or getattr(model, "nc", None) or model.yaml.get("nc") or 1),
            "kpt_shape": list(getattr(head, "kpt_shape", None) or model.yaml.get("kpt_shape") or ()) or None,
            "mask_ratio": int(value("mask_ratio", 4)), "overlap_mask": bool(value("overlap_mask", True))}


def to_tensors(batch: dict) -> dict:
    """:func:`task_batch`'s values as torch tensors."""
    import torch

    tensors = {}
    for key, spec in batch.items():
        dtype = {"float": torch.float32, "long": torch.long}[spec.dtype]
        if isinstance(spec, Rows):
            tensors[key] = torch.tensor(spec.values, dtype=dtype)
            continue
        tensor = torch.full(spec.shape, spec.background, dtype=dtype)
        for index, value, (x0, y0, x1, y1) in spec.paints:
            tensor[index, y0:y1, x0:x1] = value
        tensors[key] = tensor
    return tensors


# An open-vocabulary model's loss reads the class embeddings its trainer makes with a text encoder (a download):
# the batch key -> the model's attribute holding the embeddings it was built or saved with, which the backward check
# uses instead (YOLO-World's txt_feats; YOLOE's loss falls back to its stored ``pe`` by itself).
STORED_EMBEDDINGS = {"txt_feats": "txt_feats"}
# The method a model encodes class names with: the mark of an open-vocabulary model (WorldModel, YOLOEModel)
TEXT_ENCODER_METHOD = "get_text_pe"
ENCODER_NAME = re.compile(r"""build_text_model\(\s*["']([^"']+)["']""")


def stored_embeddings(model, images: int) -> dict:
    """The batch entries (:data:`STORED_EMBEDDINGS`) a model's loss reads, from the embeddings it stores, one row per
    image of the batch; empty for a closed-vocabulary model."""
    found = {}
    for key, attribute in STORED_EMBEDDINGS.items():
        value = getattr(model, attribute, None)
        if getattr(value, "ndim", 0) == 3:
            found[key] = value.expand(images, *value.shape[1:]) if value.shape[0] == 1 else value
    return found


def text_encoder(model) -> str | None:
    """The text encoder an open-vocabulary model names its classes with (its ``text_model``, or the one its
    ``get_text_pe`` builds), "a text encoder" where neither says; None for a closed-vocabulary model."""
    method = getattr(model, TEXT_ENCODER_METHOD, None)
    if method is None:
        return None
    named = getattr(model, "text_model", None)
    if not named:
        try:
            found = ENCODER_NAME.search(inspect.getsource(method))
        except (OSError, TypeError):
            found = None
        named = found.group(1) if found else None
    return str(named) if named else "a text encoder"


def open_vocabulary_note(model, encoder: str, trainer: str | None) -> str:
    """What verify did not check on an open-vocabulary model, and why, in one line."""
    return (f"open vocabulary ({type(model).__name__}): forward and backward ran on the class embeddings the model "
            f"stores; not checked: its text encoder {encoder} (new class names, and --train, whose "
            f"{trainer or 'trainer'} encodes the dataset's names with it), whose weights are a download")


# The smoke training's synthetic dataset draws class 0 as a filled rectangle and class 1 as a filled ellipse.
SHAPE_NAMES = ("rectangle", "ellipse")
ELLIPSE_POINTS = 16


def outline(cls: int, box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    """The drawn shape's outline in pixels, clockwise from the top left (``box``: x0, y0, width, height)."""
    x0, y0, w, h = box
    if cls == 0:
        return [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    cx, cy = x0 + w / 2, y0 + h / 2
    return [(cx + w / 2 * math.cos(a), cy + h / 2 * math.sin(a))
            for a in (2 * math.pi * k / ELLIPSE_POINTS for k in range(ELLIPSE_POINTS))]


def box_label(cls: int, box: tuple[int, int, int, int], imgsz: int, model_yaml: dict) -> str:
    """A detection label: class, normalised centre and size."""
    x0, y0, w, h = box
    return f"{cls} {(x0 + w / 2) / imgsz:.6f} {(y0 + h / 2) / imgsz:.6f} {w / imgsz:.6f} {h / imgsz:.6f}"


def polygon_label(cls: int, box: tuple[int, int, int, int], imgsz: int, model_yaml: dict) -> str:
    """A segmentation label: class and the shape's outline as normalised polygon points."""
    return " ".join([str(cls), *(f"{x / imgsz:.6f} {y / imgsz:.6f}" for x, y in outline(cls, box))])


def corners_label(cls: int, box: tuple[int, int, int, int], imgsz: int, model_yaml: dict) -> str:
    """A rotated-box label: class and the four corners of the shape's box, normalised (DOTA's order, clockwise)."""
    return " ".join([str(cls), *(f"{x / imgsz:.6f} {y / imgsz:.6f}" for x, y in outline(0, box))])


def keypoints_label(cls: int, box: tuple[int, int, int, int], imgsz: int, model_yaml: dict) -> str:
    """A pose label: the detection label, then the model YAML's ``kpt_shape`` keypoints spread over the box's
    diagonal (visible, where the keypoints have a visibility)."""
    count, dims = model_yaml["kpt_shape"]
    x0, y0, w, h = box
    values = []
    for j in range(count):
        t = (j + 0.5) / count
        values += [f"{(x0 + w * t) / imgsz:.6f}", f"{(y0 + h * t) / imgsz:.6f}", "2"][:dims]
    return " ".join([box_label(cls, box, imgsz, model_yaml), *values])


class PixelMap(NamedTuple):
    """A per-pixel label image beside each picture: ``folder/train/imN.png`` of ``dtype`` (``uint8``/``uint16``),
    ``background`` everywhere, each drawn shape filled with ``value(cls, k)`` (its class, its index k in the image)."""

    folder: str
    dtype: str
    background: int
    value: Callable[[int, int], int]


class DatasetLayout(NamedTuple):
    """How a task's trainer reads a dataset, as the targets' own loaders do: a label line per object
    (``labels/train/imN.txt``), a label image per picture (:class:`PixelMap`), or one folder per class
    (``train/<class>/``, the folder itself passed as ``data``). ``yaml`` holds the dataset YAML's entries the loader
    reads beyond ``path``/``train``/``val``/``names``; ``model_keys`` the model YAML's keys it repeats."""

    label: Callable | None = None
    pixel_map: PixelMap | None = None
    by_class: bool = False
    names: tuple[str, ...] = SHAPE_NAMES
    yaml: dict = {}
    model_keys: tuple[str, ...] = ()
    one_shape: bool = False  # one shape per image: its class is the image's (classification)


DEPTH_SCALE = 1000  # depth PNG units per metre: Ultralytics' uint16 depth maps (its ``depth_scale``)
# The layout each task's trainer reads, keyed by the targets' task names (tasks missing here get no smoke training).
# Semantic: class-id PNGs in masks/ (``masks_dir``), the background a class of its own; depth: uint16 PNGs in depth/
# beside images/, objects nearer (1-3 m) than a 4 m background.
DATASETS = {
    "detect": DatasetLayout(label=box_label),
    "segment": DatasetLayout(label=polygon_label),
    "obb": DatasetLayout(label=corners_label),
    "pose": DatasetLayout(label=keypoints_label, model_keys=("kpt_shape",)),
    "classify": DatasetLayout(by_class=True, one_shape=True),
    "semantic": DatasetLayout(pixel_map=PixelMap("masks", "uint8", len(SHAPE_NAMES), lambda cls, k: cls),
                              names=(*SHAPE_NAMES, "background"), yaml={"masks_dir": "masks"}),
    "depth": DatasetLayout(pixel_map=PixelMap("depth", "uint16", 4 * DEPTH_SCALE,
                                              lambda cls, k: (1 + k % 3) * DEPTH_SCALE),
                           names=("depth",), yaml={"depth_scale": DEPTH_SCALE}),
}


def dataset_yaml(layout: DatasetLayout, folder: str, model_yaml: dict) -> dict:
    """The dataset YAML of a smoke-training set in ``folder`` (absolute paths: YOLOv7 reads no ``path:`` key)."""
    images = f"{folder}/images/train"
    return {"path": folder, "train": images, "val": images, "nc": len(layout.names), "names": list(layout.names),
            **layout.yaml, **{key: model_yaml[key] for key in layout.model_keys}}


def reported_task(data: dict) -> str | None:
    """The task a report's build found (None: the target names no tasks, or the build failed)."""
    return (data.get("task") or {}).get("task")


def class_name(obj) -> str | None:
    return getattr(obj, "__name__", None) if obj is not None else None


def describe(facts: dict, wrapper) -> dict:
    """The task the target's wrapper chose for the YAML and what its ``task_map`` maps that task to, with the
    task's dataset and metric from the target's own tables (where it has them)."""
    task = getattr(wrapper, "task", None)
    try:
        entry = wrapper.task_map.get(task) or {}
    except Exception:  # the base class's task_map raises: a wrapper that maps nothing
        entry = {}
    tables = importlib.import_module(facts["task_tables"]) if facts["task_tables"] else None
    return {"task": task, "model_class": type(wrapper).__name__, "model": type(wrapper.model).__name__,
            "trainer": class_name(entry.get("trainer")), "validator": class_name(entry.get("validator")),
            "data": getattr(tables, "TASK2DATA", {}).get(task), "metric": getattr(tables, "TASK2METRIC", {}).get(task),
            "tasks": list(getattr(tables, "TASKS", ()))}
