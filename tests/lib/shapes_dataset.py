"""A tiny learnable detection dataset the tests write: coloured rectangles (class 0) and ellipses (class 1).

The images and labels are verify's smoke-training set (``yf_train.make_dataset``), made twice with different seeds:
one for ``train``, one for ``val``, so a study's metric measures something learned rather than memorised.
"""

from __future__ import annotations

import json
from pathlib import Path

from yamlforge.runners.yf_train import make_dataset


def shapes_dataset(folder: Path, *, count: int = 32, imgsz: int = 96) -> Path:
    """``folder/data.yaml`` naming ``count`` training and ``count // 2`` validation images; returns its path."""
    train = make_dataset(folder / "train", imgsz, count=count, seed=0).parent
    val = make_dataset(folder / "val", imgsz, count=max(2, count // 2), seed=1).parent
    data = folder / "data.yaml"
    data.write_text(json.dumps({"path": str(folder), "train": str(train / "images" / "train"),
                                "val": str(val / "images" / "train"), "nc": 2, "names": ["rectangle", "ellipse"]}))
    return data
