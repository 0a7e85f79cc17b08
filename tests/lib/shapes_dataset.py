"""A small learnable dataset the study tests write: red rectangles (class 0) and blue ellipses (class 1).

Learnable in a few epochs from scratch: one fixed, high-contrast colour per class on a plain grey background, and
large objects (a quarter to a half of the image side) that never overlap. ``train`` and ``val`` are drawn with
different seeds, so a study's metric measures something learned rather than memorised. The labels are those of the
smoke-training set (``yf_tasks.DATASETS``): boxes for ``detect``, the drawn outlines for ``segment``.
"""

from __future__ import annotations

import json
from pathlib import Path

from yamlforge.runners.yf_tasks import DATASETS

BACKGROUND = (128, 128, 128)
COLOURS = ((40, 40, 230), (230, 60, 30))  # BGR: class 0 red, class 1 blue
NAMES = ["rectangle", "ellipse"]


def _free(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> bool:
    x0, y0, w, h = box
    return all(x0 >= a + c or a >= x0 + w or y0 >= b + d or b >= y0 + h for a, b, c, d in taken)


def _image(rng, imgsz: int, task: str) -> tuple:
    import cv2
    import numpy as np

    img = np.full((imgsz, imgsz, 3), BACKGROUND, dtype=np.uint8)
    boxes: list[tuple[int, int, int, int]] = []
    lines = []
    wanted = int(rng.integers(1, 3))
    for _ in range(100):  # one or two objects, placed where they do not overlap
        if len(boxes) == wanted:
            break
        w, h = (int(v) for v in rng.integers(imgsz // 4, imgsz // 2 + 1, 2))
        box = (int(rng.integers(0, imgsz - w)), int(rng.integers(0, imgsz - h)), w, h)
        if not _free(box, boxes):
            continue
        cls = int(rng.integers(0, 2))
        x0, y0 = box[:2]
        if cls == 0:
            cv2.rectangle(img, (x0, y0), (x0 + w - 1, y0 + h - 1), COLOURS[0], -1)
        else:
            cv2.ellipse(img, (x0 + w // 2, y0 + h // 2), (w // 2, h // 2), 0, 0, 360, COLOURS[1], -1)
        boxes.append(box)
        lines.append(DATASETS[task].label(cls, box, imgsz, {}))
    return img, lines


def _split(folder: Path, count: int, imgsz: int, seed: int, task: str) -> Path:
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    images, labels = folder / "images", folder / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        img, lines = _image(rng, imgsz, task)
        cv2.imwrite(str(images / f"im{n}.png"), img)
        (labels / f"im{n}.txt").write_text("\n".join(lines) + "\n")
    return images


def shapes_dataset(folder: Path, *, count: int = 32, imgsz: int = 96, task: str = "detect") -> Path:
    """``folder/data.yaml`` naming ``count`` training and ``count // 2`` validation images with ``task``'s labels;
    returns its path."""
    train = _split(folder / "train", count, imgsz, 0, task)
    val = _split(folder / "val", max(2, count // 2), imgsz, 1, task)
    data = folder / "data.yaml"
    data.write_text(json.dumps({"path": str(folder), "train": str(train), "val": str(val), "nc": 2,
                                "names": NAMES}))
    return data
