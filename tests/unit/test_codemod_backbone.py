"""Multi-output backbone codemods: parse_model slot bookkeeping, slot-aware forward loops, the backbone branch."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import libcst as cst
import pytest
from conftest import ULTRALYTICS_VERSIONS

from yamlforge.errors import YamlforgeError
from yamlforge.patch.codemods.backbone import add_multi_output_support, backbone_registration
from yamlforge.patch.codemods.predict import SLOTS_FLAG
from yamlforge.resources import render

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "backbone"
TARGETS = [("ultralytics", v, "ultralytics/nn/tasks.py") for v in ULTRALYTICS_VERSIONS]
TARGETS.append(("yolov9", "0.0.4", "models/yolo.py"))
# whole real files only (no excerpt fixtures): YOLOv5 sets, YOLOv7 lists, forward_once, `from thop import profile`
REAL_FILES = TARGETS + [("yolov5", "7.0.14", "models/yolo.py"), ("yolov7", "1.0.1", "models/yolo.py")]


def apply(code: str) -> str:
    return add_multi_output_support(code, filename="tasks.py")


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# The shapes every target shares, cut down: a forward loop and parse_model's row loop.
PLAIN = src("""
    class BaseModel:
        def _predict_once(self, x):
            y = []
            for m in self.model:
                x = m(x)
                y.append(x if m.i in self.save else None)  # save output
            return x


    def parse_model(d, ch):
        ch = [ch]
        layers, save, c2 = [], [], ch[-1]
        for i, (f, n, m, args) in enumerate(d['backbone'] + d['head']):
            m = globals()[m]
            c2 = ch[f]

            m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)  # module
            save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
            layers.append(m_)
            if i == 0:
                ch = []
            ch.append(c2)
        return nn.Sequential(*layers), sorted(save)
""")

PLAIN_PATCHED = src("""
    class BaseModel:
        def _predict_once(self, x):
            y = []
            for m in self.model:
                x = m(x)
                if getattr(m, "yamlforge_slots", 0):  # yamlforge: a multi-output backbone fills one slot of y per output
                    y.extend(o if m.i + k in self.save else None for k, o in enumerate(x))
                    x = x[-1]  # the next layer's -1 is the backbone's last output
                else:
                    y.append(x if m.i in self.save else None)  # save output
            return x


    def parse_model(d, ch):
        ch = [ch]
        layers, save, c2 = [], [], ch[-1]
        slot_offset = 0  # yamlforge: index slots taken so far beyond one per row (multi-output backbones)
        for i, (f, n, m, args) in enumerate(d['backbone'] + d['head']):
            i += slot_offset  # yamlforge: rows are numbered by index slot; a K-output backbone takes K
            m_ = None  # yamlforge: a backbone branch builds its module early, to read its output widths
            m = globals()[m]
            c2 = ch[f]

            if m_ is None:  # yamlforge: not already built by a backbone branch
                m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)  # module
            save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
            layers.append(m_)
            if i == 0:
                ch = []
            if getattr(m_, "yamlforge_slots", 0):  # yamlforge: one ch entry per backbone output; later rows move on
                ch.extend(c2)
                slot_offset += len(c2) - 1
            else:
                ch.append(c2)
        return nn.Sequential(*layers), sorted(save)
""")  # noqa: E501 -- the codemod's output, verbatim

# RT-DETR runs its head apart: the loop walks self.model[:-1]; YOLOv9 names the method _forward_once.
RTDETR_AND_YOLOV9 = PLAIN.replace("class BaseModel:", "class Model:").replace("_predict_once", "_forward_once")
RTDETR_AND_YOLOV9 += src("""


    class RTDETRDetectionModel(DetectionModel):
        def predict(self, x, batch=None):
            y = []
            for m in self.model[:-1]:  # except the head part
                x = m(x)  # run
                y.append(x if m.i in self.save else None)
            head = self.model[-1]
            return head([y[j] for j in head.f], batch)
""")

FIXES = [
    pytest.param(PLAIN, PLAIN_PATCHED, id="plain-ultralytics-shape"),
    pytest.param(
        RTDETR_AND_YOLOV9,
        PLAIN_PATCHED.replace("class BaseModel:", "class Model:").replace("_predict_once", "_forward_once")
        + src("""


            class RTDETRDetectionModel(DetectionModel):
                def predict(self, x, batch=None):
                    y = []
                    for m in self.model[:-1]:  # except the head part
                        x = m(x)  # run
                        if getattr(m, "yamlforge_slots", 0):  # yamlforge: a multi-output backbone fills one slot of y per output
                            y.extend(o if m.i + k in self.save else None for k, o in enumerate(x))
                            x = x[-1]  # the next layer's -1 is the backbone's last output
                        else:
                            y.append(x if m.i in self.save else None)
                    head = self.model[-1]
                    return head([y[j] for j in head.f], batch)
        """),  # noqa: E501 -- the codemod's output, verbatim
        id="yolov9-forward-once-and-rtdetr-head-slice",
    ),
    pytest.param(
        PLAIN.replace("nn.Sequential(*(m", "torch.nn.Sequential(*(m"),
        PLAIN_PATCHED.replace("nn.Sequential(*(m", "torch.nn.Sequential(*(m"),
        id="torch-nn-sequential-8.3",
    ),
    pytest.param(  # half-applied by hand: the forward loop is done, parse_model is not
        PLAIN_PATCHED.split("\n\n\ndef parse_model")[0]
        + "\n\n\ndef parse_model"
        + PLAIN.split("\n\n\ndef parse_model")[1],
        PLAIN_PATCHED,
        id="forward-loop-already-done",
    ),
]

NOOPS = [
    pytest.param(PLAIN_PATCHED, id="applied"),
    pytest.param(
        PLAIN_PATCHED.replace("  # yamlforge: not already built by a backbone branch", ""), id="comment-removed"
    ),
    pytest.param(PLAIN_PATCHED.replace('"yamlforge_slots"', "'yamlforge_slots'"), id="single-quoted-flag"),
    pytest.param(
        PLAIN_PATCHED.replace("(o if m.i + k in self.save else None for k, o in enumerate(x))", "(out for out in x)"),
        id="slot-store-hand-edited",
    ),
]


@pytest.mark.parametrize(("before", "after"), FIXES)
def test_fixes(before, after):
    assert apply(before) == after
    assert apply(after) == after


@pytest.mark.parametrize("code", NOOPS)
def test_noop(code):
    assert apply(code) == code


ERRORS = [
    pytest.param("x = 1\n", "no parse_model function", 1, id="no-parse-model"),
    pytest.param("def parse_model(d, ch):\n    return d\n", "expected the row loop", 1, id="no-row-loop"),
    pytest.param(PLAIN.replace("ch.append(c2)", "ch += [c2]"), "expected 'ch.append(c2)'", 13, id="no-ch-append"),
    pytest.param(
        PLAIN.replace("m_ = nn.Sequential", "m_ = build(m, args, n)  #"), "construction line", 13, id="no-construction"
    ),
    pytest.param(PLAIN.replace("_predict_once", "_run"), "no _predict_once / _forward_once", 1, id="no-forward-method"),
    pytest.param(
        PLAIN.replace("y.append(x if", "y.insert(len(y), x if"), "BaseModel._predict_once", 2, id="no-save-append"
    ),
    pytest.param(
        PLAIN + "\n\nclass RTDETRDetectionModel:\n    def predict(self, x):\n        return self.head(x)\n",
        "RTDETRDetectionModel.predict",
        27,
        id="rtdetr-predict-without-loop",
    ),
    pytest.param(PLAIN.replace("ch = [ch]", "ch = [ch"), "not valid Python", 11, id="syntax-error"),
]


@pytest.mark.parametrize(("code", "message", "line"), ERRORS)
def test_unexpected_shape_is_one_clear_error(code, message, line):
    with pytest.raises(YamlforgeError) as info:
        apply(code)
    assert message in info.value.message
    if line is not None:
        assert info.value.where == f"tasks.py:{line}"
    else:
        assert info.value.where.startswith("tasks.py:")


FIXTURE_NAMES = [f"{kind if kind == 'yolov9' else 'ultralytics'}-{version}" for kind, version, _ in TARGETS]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_excerpt_before_after(name):
    """Excerpts of each target's parse_model and forward methods, patched as reviewed in the .after file."""
    before = (FIXTURES / f"tasks-{name}.py.before").read_text(encoding="utf-8")
    after = (FIXTURES / f"tasks-{name}.py.after").read_text(encoding="utf-8")
    assert apply(before) == after
    assert apply(after) == after


@pytest.mark.parametrize(("kind", "version", "relpath"), REAL_FILES, ids=[f"{k}-{v}" for k, v, _ in REAL_FILES])
def test_full_real_file_idempotent_and_compiles(pristine, kind, version, relpath):
    code = (pristine(kind, version) / relpath).read_text(encoding="utf-8")
    once = add_multi_output_support(code, filename=relpath)
    assert add_multi_output_support(once, filename=relpath) == once
    compile(once, relpath, "exec")
    # parse_model gets its five bookkeeping lines; each forward loop one flag test
    assert once.count("# yamlforge:") - code.count("# yamlforge:") == 5 + once.count('getattr(m, "yamlforge_slots", 0)')
    expected_loops = 2 if kind == "ultralytics" else 1  # _predict_once + RTDETRDetectionModel.predict at least
    assert once.count('getattr(m, "yamlforge_slots", 0)') >= expected_loops
    # only insertions: every original line survives, some of them indented one level deeper
    kept = Counter(line.strip() for line in once.splitlines())
    assert all(kept[line] >= count for line, count in Counter(line.strip() for line in code.splitlines()).items())


def test_backbone_registration_is_a_custom_branch_rendered_from_the_template():
    registration = backbone_registration("SyntheticBackbone")
    assert registration.name == "SyntheticBackbone"
    assert registration.channels == "custom"
    assert registration.body == render("parse_model/backbone.py.j2", name="SyntheticBackbone")
    body = cst.parse_module(registration.body)  # statements that parse on their own
    assigned = {cst.Module([]).code_for_node(t.target) for s in body.body for t in getattr(s.body[0], "targets", ())}
    # the protocol with the bookkeeping edits: m_ built here, c2 the widths, the flag the forward loops test
    assert {"m_", "c2", f"m_.{SLOTS_FLAG}"} <= assigned
