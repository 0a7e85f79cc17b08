"""A fork of Ultralytics with its own model class, task_map, trainer and loss, and its own model names, built in the
test from a released checkout: gen-yaml resolves the fork's names with the fork's own loader, verify builds,
back-propagates and trains with the class the fork's own ``yolo`` entry point picks, and revert is byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checkout_tools import tree_hashes
from cli_tools import invoke
from typer.testing import CliRunner

from yamlforge.cli import app

cli = CliRunner()
MODULE = "SHSA"
LOSS_SCALE = 3.0  # the fork's loss is the stock detection loss times this: observably its own

# The fork's wrapper, trainer and validator (its own package folder, as THU-MIG's YOLOv10 keeps models/yolov10/)
FORK_WRAPPER = '''
from ultralytics.engine.model import Model
from ultralytics.models import yolo
from ultralytics.nn.tasks import MyoloDetectionModel


class MyoloTrainer(yolo.detect.DetectionTrainer):
    def get_model(self, cfg=None, weights=None, verbose=True):
        model = MyoloDetectionModel(cfg, nc=self.data["nc"], ch=self.data["channels"], verbose=False)
        if weights:
            model.load(weights)
        return model


class MyoloValidator(yolo.detect.DetectionValidator):
    pass


class MYOLO(Model):
    def __init__(self, model="myolo-n.yaml", task=None, verbose=False):
        super().__init__(model=model, task=task, verbose=verbose)

    @property
    def task_map(self):
        return {"detect": {"model": MyoloDetectionModel, "trainer": MyoloTrainer, "validator": MyoloValidator,
                           "predictor": yolo.detect.DetectionPredictor}}
'''
# Appended to nn/tasks.py: the fork's model class and loss live beside the stock ones
FORK_MODEL = f'''

class MyoloLoss(v8DetectionLoss):
    def __call__(self, preds, batch):
        loss, items = super().__call__(preds, batch)
        return loss * {LOSS_SCALE}, items


class MyoloDetectionModel(DetectionModel):
    def init_criterion(self):
        return MyoloLoss(self)
'''
# The fork's names: myolo-n.yaml reads myolo.yaml at scale n
STOCK_UNIFIED = ('    unified_path = re.sub(r"(\\d+)([nslmx])(.+)?$", r"\\1\\3", str(path))'
                 '  # i.e. yolov8x.yaml -> yolov8.yaml\n')
FORK_UNIFIED = '    unified_path = re.sub(r"myolo-([nslmx])(.*)$", r"myolo\\2", unified_path)  # myolo-n -> myolo\n'
STOCK_SCALE = '    except AttributeError:\n        return ""\n'
FORK_SCALE = ('    except AttributeError:\n        own = re.match(r"myolo-([nslmx])", Path(model_path).stem)\n'
              '        return own.group(1) if own else ""\n')
STOCK_ENTRY = '    elif "yolo_nas" in stem:\n'
FORK_ENTRY = ('    elif "myolo" in stem:\n        from ultralytics.models.myolo import MYOLO\n\n'
              '        model = MYOLO(model)\n')


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path.name}: the release no longer has {old!r}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def make_fork(root: Path) -> None:
    """The fork: its model class and loss in nn/tasks.py, its names in yaml_model_load / guess_model_scale, its
    wrapper in models/myolo, picked by its CLI for names holding "myolo", and its model YAML."""
    package = root / "ultralytics"
    tasks = package / "nn" / "tasks.py"
    replace_once(tasks, STOCK_UNIFIED, STOCK_UNIFIED + FORK_UNIFIED)
    replace_once(tasks, STOCK_SCALE, FORK_SCALE)
    tasks.write_text(tasks.read_text(encoding="utf-8") + FORK_MODEL, encoding="utf-8")
    (package / "models" / "myolo").mkdir()
    (package / "models" / "myolo" / "__init__.py").write_text(FORK_WRAPPER, encoding="utf-8")
    replace_once(package / "cfg" / "__init__.py", STOCK_ENTRY, FORK_ENTRY + STOCK_ENTRY)
    (package / "cfg" / "models" / "myolo").mkdir()
    stock = (package / "cfg" / "models" / "v8" / "yolov8.yaml").read_text(encoding="utf-8")
    (package / "cfg" / "models" / "myolo" / "myolo.yaml").write_text(stock, encoding="utf-8")


@pytest.fixture(scope="module")
def fork(checkout_factory):
    root = checkout_factory("ultralytics", "8.4.190")
    make_fork(root)
    return root


def test_a_fork_is_resolved_built_trained_with_its_own_class_and_reverted(fork, tmp_path):
    forked = tree_hashes(fork)
    invoke("apply", "--repo", fork, "--module", MODULE)
    out = tmp_path / "models"
    out.mkdir()
    wrote = invoke("gen-yaml", "myolo-n", "--insert-after", f"6={MODULE}", "--repo", fork, "-o", out)
    model = out / f"myolo-n-{MODULE}.yaml"
    assert model.is_file(), wrote
    assert "myolo.yaml" in wrote  # the fork's own loader resolved myolo-n to its myolo.yaml

    result = cli.invoke(app, ["verify", str(model), "--repo", str(fork), "--imgsz", "64", "--train", "--json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 0, data["checks"]
    task = data["task"]
    assert (task["task"], task["model_class"], task["model"], task["trainer"], task["validator"]) == (
        "detect", "MYOLO", "MyoloDetectionModel", "MyoloTrainer", "MyoloValidator")
    assert data["gradients"]["loss"] == "the target's detect loss (MyoloLoss)"
    checks = {c["name"]: c for c in data["checks"]}
    assert "with MYOLO.train (MyoloTrainer)" in checks["train"]["message"]
    assert checks["reload"]["status"] == checks["safe_reload"]["status"] == "pass"
    assert any(row["module"] == MODULE for row in data["layers"])

    invoke("revert", "--repo", fork)
    assert tree_hashes(fork) == forked


def test_a_name_of_the_fork_resolves_to_its_file_and_scale_without_asking_again(fork):
    from yamlforge.modelyaml.base import resolve_base
    from yamlforge.targets import detect_target

    target = detect_target(fork)
    first = resolve_base("myolo-s", target)
    assert (first.path.name, first.scale) == ("myolo.yaml", "s")
    again = resolve_base("myolo-s", detect_target(fork))  # from the cache: the same answer
    assert again == first
    result = cli.invoke(app, ["verify", "myolo-s.yaml", "--repo", str(fork), "--imgsz", "64", "--json"])
    assert result.exit_code == 0, result.output  # a name only the fork's own loader knows
    assert json.loads(result.stdout)["task"]["model"] == "MyoloDetectionModel"
