"""Runs inside the target's Python: the 1-epoch smoke training on synthetic images, then the checkpoint reloads."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

if __package__:  # imported as yamlforge.runners.yf_train (the tests)
    from . import yf_facts, yf_scripts, yf_tasks, yf_wrappers
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts
    import yf_scripts
    import yf_tasks
    import yf_wrappers


# check_safe_reload reloads the checkpoint in a fresh process: the runner script in its reload mode
VERIFY_RUNNER = Path(__file__).with_name("verify_runner.py")
TRAIN_IMGSZ_MAX = 160  # the smoke training proves the loop works; image size does not matter for that
SMOKE_IMAGES = 4  # nor does the number of images: two batches of the smallest batch size, two of each class
# What every target's trainer logs when it starts from a checkpoint (Ultralytics' BaseModel.load, the train.py scripts)
TRANSFERRED = re.compile(r"Transferred (\d+)/(\d+) items")

# Hyperparameters for trainer "script": a superset of the keys the YOLOv5-style train.py scripts read.
SCRIPT_HYP = {
    "lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "weight_decay": 0.0005, "warmup_epochs": 0.0,
    "warmup_momentum": 0.8, "warmup_bias_lr": 0.1, "box": 7.5, "cls": 0.5, "cls_pw": 1.0, "obj": 0.7,
    "obj_pw": 1.0, "dfl": 1.5, "iou_t": 0.2, "anchor_t": 5.0, "fl_gamma": 0.0, "hsv_h": 0.015, "hsv_s": 0.7,
    "hsv_v": 0.4, "degrees": 0.0, "translate": 0.1, "scale": 0.5, "shear": 0.0, "perspective": 0.0,
    "flipud": 0.0, "fliplr": 0.5, "mosaic": 1.0, "mixup": 0.0, "copy_paste": 0.0,
}


def make_dataset(folder: Path, imgsz: int, count: int = SMOKE_IMAGES, seed: int = 0, task: str = "detect",
                 model_yaml: dict | None = None) -> Path:
    """A few images with coloured rectangles (class 0) and ellipses (class 1) and their labels in the layout
    ``task``'s trainer reads (:data:`yf_tasks.DATASETS`; a pose dataset has ``model_yaml``'s ``kpt_shape``); returns
    what its trainer takes as ``data``: the dataset YAML, or the folder of a class-per-folder set."""
    import numpy as np

    layout = yf_tasks.DATASETS[task]
    rng = np.random.default_rng(seed)
    for n in range(count):
        img = np.full((imgsz, imgsz, 3), rng.integers(0, 255, 3), dtype=np.uint8)
        shapes = []
        for _ in range(1 if layout.one_shape else int(rng.integers(1, 4))):
            w, h = (int(v) for v in rng.integers(imgsz // 6, imgsz // 2, 2))
            x0, y0 = int(rng.integers(0, imgsz - w)), int(rng.integers(0, imgsz - h))
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            cls = n % 2 if layout.one_shape else int(rng.integers(0, 2))  # every class has an image
            draw_shape(img, cls, (x0, y0, w, h), colour)
            shapes.append((cls, (x0, y0, w, h)))
        write_example(folder, f"im{n}", img, shapes, layout, model_yaml or {})
    if layout.by_class:
        return folder
    data = folder / "data.yaml"
    data.write_text(json.dumps(yf_tasks.dataset_yaml(layout, str(folder), model_yaml or {})))
    return data


def draw_shape(canvas, cls: int, box: tuple[int, int, int, int], value) -> None:
    """Class 0 as a filled rectangle, class 1 as a filled ellipse, in ``value`` (a colour or a label value)."""
    import cv2

    x0, y0, w, h = box
    if cls == 0:
        cv2.rectangle(canvas, (x0, y0), (x0 + w, y0 + h), value, -1)
    else:
        cv2.ellipse(canvas, (x0 + w // 2, y0 + h // 2), (w // 2, h // 2), 0, 0, 360, value, -1)


def write_example(folder: Path, stem: str, img, shapes: list, layout, model_yaml: dict) -> None:
    """One image and its labels in ``layout``: ``images/train/`` with a text label or a label image beside it, or
    ``train/<class>/`` and ``val/<class>/`` (the class of its one shape)."""
    import cv2
    import numpy as np

    imgsz = img.shape[0]
    splits = [folder / split / layout.names[shapes[0][0]] for split in ("train", "val")] if layout.by_class else \
        [folder / "images" / "train"]
    for where in splits:
        where.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(where / f"{stem}.jpg"), img)
    if layout.label:
        labels = folder / "labels" / "train"
        labels.mkdir(parents=True, exist_ok=True)
        lines = [layout.label(cls, box, imgsz, model_yaml) for cls, box in shapes]
        (labels / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    if layout.pixel_map:
        spec = layout.pixel_map
        label_image = np.full(img.shape[:2], spec.background, dtype=spec.dtype)
        for k, (cls, box) in enumerate(shapes):
            draw_shape(label_image, cls, box, int(spec.value(cls, k)))
        (folder / spec.folder / "train").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / spec.folder / "train" / f"{stem}.png"), label_image)


def dataset_images(folder: Path) -> list[Path]:
    """The training images of a smoke-training set written by :func:`make_dataset`, in order."""
    return sorted(p for p in folder.rglob("*.jpg") if "val" not in p.relative_to(folder).parts)


def provide_fonts() -> None:
    """Put a local TTF where the targets look for Arial, so their dataset checks do not download one."""
    try:
        import matplotlib

        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    except Exception:
        return
    for env in ("YOLO_CONFIG_DIR", "YOLOV5_CONFIG_DIR"):
        folder = os.environ.get(env)
        if folder and source.is_file():
            for name in ("Arial.ttf", "Arial.Unicode.ttf"):
                target = Path(folder) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    target.write_bytes(source.read_bytes())


def needs_legacy_load(facts: dict) -> bool:
    """torch >= 2.6 loads with weights_only=True unless told otherwise; old checkpoint loaders never say."""
    import inspect

    import torch

    major, minor = (int(v) for v in re.findall(r"\d+", torch.__version__)[:2])
    if (major, minor) < (2, 6):
        return False
    return "weights_only" not in inspect.getsource(yf_facts.load_callable(facts["checkpoint_loader"]))


class LogLines(logging.Handler):
    """The messages a target's logger emits while attached (its trainer's "Transferred N/M items")."""

    def __init__(self, name: str):
        super().__init__(logging.INFO)
        self.logger, self.lines = logging.getLogger(name), []

    def __enter__(self):
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)

    def emit(self, record):
        self.lines.append(record.getMessage())


def transferred(text: str, pretrained: str | None) -> dict | None:
    """The trainer's own count of the checkpoint's tensors it put into the model: its last "Transferred" line."""
    found = TRANSFERRED.findall(text)
    return {"items": int(found[-1][0]), "of": int(found[-1][1]), "from": pretrained} if pretrained and found else None


def train_with_wrapper(report: yf_facts.Report, facts: dict, cfg: str, cfg_dict: dict, workdir: Path, imgsz: int,
                       batch: int, pretrained: str | None = None) -> bool:
    """The wrapper's own ``.train()`` for one epoch (from ``pretrained`` through ``.load()``, which every version
    honours for a YAML-built model), then a reload (and a restricted reload where there is one)."""
    wrapper_cls = yf_wrappers.wrapper_class(facts, cfg, cfg_dict)
    wrapper_name, wrapper_spec = wrapper_cls.__name__, f"{wrapper_cls.__module__}:{wrapper_cls.__name__}"
    data = make_dataset(workdir / "data", imgsz, task=yf_tasks.reported_task(report.data) or "detect",
                        model_yaml=cfg_dict)
    image = dataset_images(workdir / "data")[0]
    started = time.perf_counter()
    try:
        with LogLines(facts["package"]) as log:
            model = wrapper_cls(cfg)
            if pretrained:
                model.load(pretrained)
            model.train(data=str(data), epochs=1, imgsz=imgsz, batch=batch, workers=0, device="cpu", plots=False,
                        amp=False, project=str(workdir / "runs"), name="train", exist_ok=True, verbose=False,
                        val=False)
        trainer = model.trainer
        weights = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
    except Exception as exc:
        return yf_facts.fail_at_layer(report, "train", exc, "1-epoch smoke training failed",
                             hint=yf_facts.hint_for(exc, facts["package"]))
    status, moved, start = start_from_checkpoint("\n".join(log.lines), pretrained)
    report.data["train"] = {"weights": str(weights), "imgsz": imgsz, "seconds": round(time.perf_counter() - started, 1),
                            "transferred": moved,
                            # the integrations (and analytics) the settings let the trainer load
                            "callbacks": sorted({f.__module__ for fs in trainer.callbacks.values() for f in fs})}
    report.check("train", status, f"1 epoch on {SMOKE_IMAGES} synthetic images at {imgsz} with {wrapper_name}.train "
                 f"({type(trainer).__name__}) in {time.perf_counter() - started:.0f} s" + start)
    try:
        predicted = predict_with_wrapper(facts["package"], wrapper_spec, weights, image, imgsz)
    except Exception as exc:
        return report.check("reload", "fail", f"{wrapper_name}('{weights.name}') + predict failed: "
                            f"{yf_facts.one_line(exc)}", where=yf_facts.where_in_traceback(exc))
    report.check("reload", "pass", f"{wrapper_name}('{weights.name}') reloaded and predicted ({predicted})")
    if facts["safe_load_env"] and yf_facts.version_at_least(facts["version"], facts["safe_load_since"]):
        return check_safe_reload(report, facts, wrapper_spec, weights, imgsz)
    return True


def predict_with_wrapper(package: str, wrapper: str, weights: Path, image: Path, imgsz: int) -> str:
    """What the reloaded model predicts for ``image`` (:func:`prediction`). ``wrapper``: a class of the package
    (``YOLO``) or ``"module:Class"`` (a fork's own, wherever it lives)."""
    model = load_with_wrapper(package, wrapper, weights)
    results = model.predict(str(image), imgsz=imgsz, device="cpu", verbose=False, save=False)
    return prediction(results[0] if results else None)


def forward_with_wrapper(package: str, wrapper: str, weights: Path, imgsz: int) -> str:
    """The shape of what the reloaded model's network computes for a blank image: the load and the layers it built,
    without the predictor (whose NMS imports torchvision, 2 s, and ran in :func:`predict_with_wrapper` already)."""
    model = load_with_wrapper(package, wrapper, weights).model
    return "x".join(str(n) for n in blank_output_shape(model.float().eval(), imgsz))


def blank_output_shape(model, imgsz: int) -> list[int]:
    """The shape of ``model``'s first output for one blank ``imgsz`` image (what a reload check shows)."""
    import torch

    with torch.no_grad():
        return yf_facts.shape_of(next(yf_facts.tensors(model(torch.zeros(1, 3, imgsz, imgsz)))))


def load_with_wrapper(package: str, wrapper: str, weights: Path):
    """``Wrapper(weights)``; ``wrapper``: a class of the package (``YOLO``) or ``"module:Class"`` (a fork's own)."""
    return yf_facts.load_callable(wrapper if ":" in wrapper else f"{package}:{wrapper}")(str(weights))


def prediction(result) -> str:
    """A prediction in a few words, whatever its task: the result's outputs (its ``_keys``: boxes, masks, probs,
    keypoints, obb, semantic_mask, depth) that are set, each with the shape of its data."""
    if result is None:
        return "no result"
    outputs = [(key, getattr(result, key, None)) for key in getattr(result, "_keys", ("boxes",))]
    shown = [f"{key} " + "x".join(str(n) for n in getattr(getattr(value, "data", value), "shape", ()))
             for key, value in outputs if value is not None]
    return ", ".join(shown) or "nothing"


def check_safe_reload(report: yf_facts.Report, facts: dict, wrapper: str, weights: Path, imgsz: int) -> bool:
    """A restricted loader only accepts classes from the target's own module files: reload in a fresh process (the
    flag is read when the target is imported) and run the network it built."""
    env_name = facts["safe_load_env"]
    cmd = [sys.executable, str(VERIFY_RUNNER), "--mode", "reload", "--target", json.dumps(facts),
           "--weights", str(weights), "--imgsz", str(imgsz), "--wrapper", wrapper]
    result = subprocess.run(cmd, env=dict(os.environ, **{env_name: "1"}), capture_output=True, text=True, check=False)
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        answer = {"error": (result.stderr.strip().splitlines() or ["no output"])[-1]}
    if "error" in answer:
        return report.check("safe_reload", "fail",
                            f"with {env_name}=1 the checkpoint does not reload: {answer['error']}",
                            hint=f"place the module's file directly in {facts['modules_dir']}/ (yamlforge apply does)")
    return report.check("safe_reload", "pass", f"reloaded with {env_name}=1 and ran forward ({answer['output']})")


def start_from_checkpoint(output: str, pretrained: str | None) -> tuple[str, dict | None, str]:
    """(the train check's status, the trainer's transferred count, what the check's message adds) for a smoke
    training from ``pretrained`` whose trainer printed ``output``. The user asked for that start: when the trainer
    printed no "Transferred N/M items" line it cannot be shown, so the check warns instead of passing silently."""
    if not pretrained:
        return "pass", None, ""
    moved = transferred(output, pretrained)
    if moved is None:
        return "warn", None, (f"; the trainer printed no \"Transferred N/M items\" line, so the start from "
                              f"{Path(pretrained).name} could not be shown")
    return "pass", moved, f"; from {Path(pretrained).name} it transferred {moved['items']}/{moved['of']} items"


def run_train_script(facts: dict, script: str, cfg: str, cfg_dict: dict, workdir: Path, imgsz: int, batch: int,
                     pretrained: str | None = None) -> tuple[str | None, str, Path | None]:
    """The checkout's own training script for one epoch (``--weights pretrained``) on a synthetic dataset of the
    head's task, in this process (:func:`yf_scripts.run_script`); returns (why it failed or None, what it printed,
    the checkpoint or None)."""
    data = make_dataset(workdir / "data", imgsz, task=yf_scripts.head_task(facts, cfg_dict) or "detect",
                        model_yaml=cfg_dict)
    args = ["--data", str(data), "--epochs", "1", "--device", "cpu", "--workers", "0", "--project",
            str(workdir / "runs"), "--name", "train", "--exist-ok",
            *script_arguments(facts, script, cfg, workdir, imgsz, batch, pretrained)]
    failed, printed = yf_scripts.run_script(facts, Path(facts["root"]) / script, args, capture=True)
    sys.stderr.write(printed[-12000:])
    weights_dir = workdir / "runs" / "train" / "weights"
    return failed, printed, next((w for w in (weights_dir / "best.pt", weights_dir / "last.pt") if w.is_file()), None)


CHECKPOINT_MIN_BATCH = 4  # classify/train.py plots its first batch in a grid that fails for 2-3 images


def script_arguments(facts: dict, script: str, cfg: str, workdir: Path, imgsz: int, batch: int,
                     pretrained: str | None) -> list[str]:
    """The script's model and batch arguments: ``--model`` a checkpoint of the YAML's layers for a script that
    trains from one (:func:`yf_scripts.start_checkpoint`), else ``--cfg``, ``--hyp`` and ``--weights``."""
    start = yf_scripts.start_checkpoint(facts, script, cfg, workdir / "start.pt")
    if start is not None:
        return ["--model", str(start), "--batch-size", str(max(batch, CHECKPOINT_MIN_BATCH)), "--img", str(imgsz)]
    hyp = workdir / "hyp.yaml"
    hyp.write_text(json.dumps(script_hyperparameters(facts)))
    return ["--cfg", str(Path(cfg).resolve()), "--hyp", str(hyp), "--weights", pretrained or "",
            "--batch-size", str(batch), "--img", str(imgsz), *facts["train_flags"]]


def script_hyperparameters(facts: dict) -> dict:
    """What the scripts get as ``--hyp`` (the target's own file where the facts name one) and set as ``model.hyp``."""
    if facts["train_hyp"]:
        import yaml

        return yaml.safe_load(Path(facts["train_hyp"]).read_text(encoding="utf-8"))
    return dict(SCRIPT_HYP)


def train_with_script(report: yf_facts.Report, facts: dict, cfg: str, cfg_dict: dict, workdir: Path, imgsz: int,
                      batch: int, pretrained: str | None = None) -> bool:
    """The checkout's training script (chosen by the head) for one epoch, then its checkpoint loader + a forward."""
    script = yf_facts.by_head(facts["train_scripts"], cfg_dict)
    where = str(Path(facts["root"]) / script)
    refusal = yf_scripts.missing_script(facts, cfg_dict, script)
    if refusal:
        return report.check("train", "fail", refusal, where=where,
                            hint=f"train it from a checkout that has {script} (the upstream repository's layout)")
    started = time.perf_counter()
    failed, printed, weights = run_train_script(facts, script, cfg, cfg_dict, workdir, imgsz, batch, pretrained)
    if failed or weights is None:
        missing = re.search(r"No module named '([\w.]+)'", failed or "")
        hint = yf_facts.hint_for(ModuleNotFoundError(name=missing.group(1)), facts["package"]) if missing else None
        return report.check("train", "fail", f"{script} (1 epoch) failed: {failed or 'no checkpoint'}",
                            hint=hint, where=where)
    status, moved, start = start_from_checkpoint(printed, pretrained)
    report.data["train"] = {"weights": str(weights), "imgsz": imgsz, "seconds": round(time.perf_counter() - started, 1),
                            "transferred": moved}
    report.check("train", status, f"1 epoch on synthetic images at {imgsz} with {script} in "
                 f"{time.perf_counter() - started:.0f} s" + start)
    loader = facts["checkpoint_loader"].partition(":")[2]
    try:
        import torch

        model = yf_facts.load_callable(facts["checkpoint_loader"])(str(weights), torch.device("cpu"))
        boxes = blank_output_shape(model, imgsz)
    except Exception as exc:
        return report.check("reload", "fail", f"{loader}('{weights.name}') + predict failed: {yf_facts.one_line(exc)}",
                            where=yf_facts.where_in_traceback(exc))
    return report.check("reload", "pass", f"{loader}('{weights.name}') reloaded and predicted {boxes}")


TRAINERS = {"wrapper": train_with_wrapper, "script": train_with_script}


def check_train(report: yf_facts.Report, facts: dict, cfg: str, cfg_dict: dict, imgsz: int, batch: int,
                pretrained: str | None = None) -> None:
    """One epoch with the target's own trainer on a synthetic dataset (from the checkpoint ``pretrained``, as
    the trainer itself transfers it), in the working directory, then a reload."""
    if report.failed():
        report.check("train", "skip", "not run: an earlier check failed")
        return
    if report.data.get("text_encoder"):
        report.check("train", "skip", f"not run: the trainer encodes the dataset's class names with the text encoder "
                     f"{report.data['text_encoder']}, whose weights are a download (see the note)")
        return
    task = yf_tasks.reported_task(report.data)
    if task and task not in yf_tasks.DATASETS:
        report.check("train", "skip", f"not run: yamlforge writes no synthetic {task} dataset yet "
                     f"(it writes {', '.join(yf_tasks.DATASETS)} datasets)")
        return
    if needs_legacy_load(facts):
        import torch

        os.environ[yf_facts.LEGACY_LOAD_ENV] = "1"
        report.note(f"the checkout's loader predates torch {torch.__version__}'s weights_only=True default; "
                    f"training and reloading ran with {yf_facts.LEGACY_LOAD_ENV}=1 (set it too, or pin torch<2.6)")
    provide_fonts()
    train_imgsz = max(32, min(imgsz, TRAIN_IMGSZ_MAX) // 32 * 32)
    TRAINERS[facts["trainer"]](report, facts, cfg, cfg_dict, Path.cwd(), train_imgsz, batch, pretrained)
