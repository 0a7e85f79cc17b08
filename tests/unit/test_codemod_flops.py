"""FLOPs codemod: get_flops / YOLOv9 model_info fall back to a full-size profile when the stride-sized one fails or
is 0."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest
from conftest import ULTRALYTICS_VERSIONS

from yamlforge.errors import YamlforgeError
from yamlforge.patch.codemods.flops import fix_get_flops

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "backbone"
TARGETS = [("ultralytics", v, "ultralytics/utils/torch_utils.py") for v in ULTRALYTICS_VERSIONS]
TARGETS.append(("yolov9", "0.0.4", "utils/torch_utils.py"))
# whole real files only (no excerpt fixtures): YOLOv5 sets, YOLOv7 lists, forward_once, `from thop import profile`
REAL_FILES = TARGETS + [("yolov5", "7.0.14", "utils/torch_utils.py"), ("yolov7", "1.0.1", "utils/torch_utils.py")]


def apply(code: str) -> str:
    return fix_get_flops(code, filename="torch_utils.py")


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


HELPER = src('''
    def gflops_at_full_size(model, imgsz=640):
        """GFLOPs of one forward pass at the full image size (yamlforge: when the stride-sized estimate fails or is 0)."""
        try:
            from copy import deepcopy

            import thop

            p = next(model.parameters())
            size = list(imgsz) if isinstance(imgsz, (list, tuple)) else [imgsz, imgsz]
            im = torch.empty((1, p.shape[1], *size), device=p.device, dtype=p.dtype)  # input image in BCHW format
            return thop.profile(deepcopy(model).eval(), inputs=[im], verbose=False)[0] / 1e9 * 2
        except Exception:
            return 0.0
''')  # noqa: E501 -- the codemod's output, verbatim

DECORATOR = src('''
    def fall_back_to_full_size(get_flops):
        """yamlforge: ``get_flops`` profiles a stride-sized image, too small for RT-DETR and multi-output backbones."""
        import functools

        @functools.wraps(get_flops)
        def get_flops_or_full_size(model, imgsz=640):
            return get_flops(model, imgsz) or gflops_at_full_size(model, imgsz)

        return get_flops_or_full_size
''')

GET_FLOPS = src('''
    def get_flops(model, imgsz=640):
        """Return a YOLO model's FLOPs."""
        try:
            stride = 32
            im = torch.empty((1, 3, stride, stride))
            flops = thop.profile(deepcopy(model), inputs=[im], verbose=False)[0] / 1E9 * 2
            return flops * imgsz / stride * imgsz / stride
        except Exception:
            return 0
''')

ULTRALYTICS = "import torch\n\n\n" + GET_FLOPS + "\n\ndef after():\n    pass\n"
ULTRALYTICS_FIXED = (
    "import torch\n\n\n"
    + HELPER
    + "\n\n"
    + DECORATOR
    + "\n\n@fall_back_to_full_size\n"
    + GET_FLOPS
    + "\n\ndef after():\n    pass\n"
)

MODEL_INFO = src("""
    def model_info(model, verbose=False, imgsz=640):
        n_p = sum(x.numel() for x in model.parameters())  # number parameters
        try:  # FLOPs
            stride = 32
            im = torch.empty((1, 3, stride, stride))
            flops = thop.profile(deepcopy(model), inputs=(im, ), verbose=False)[0] / 1E9 * 2  # stride GFLOPs
            fs = f', {flops * imgsz / stride * imgsz / stride:.1f} GFLOPs'
        except Exception:
            fs = ''

        LOGGER.info(f"summary: {n_p} parameters{fs}")
""")
MODEL_INFO_FIXED = MODEL_INFO.replace(
    "        fs = ''\n",
    "        fs = ''\n"
    "    if not fs or not flops:  # yamlforge: the stride-sized profile failed or gave 0;"
    " profile at the full image size\n"
    "        flops = gflops_at_full_size(model, imgsz)\n"
    '        fs = f", {flops:.1f} GFLOPs" if flops else ""\n',
)
YOLOV9 = "import torch\n\n\n" + MODEL_INFO
YOLOV9_FIXED = "import torch\n\n\n" + HELPER + "\n\n" + MODEL_INFO_FIXED

FIXES = [
    pytest.param(ULTRALYTICS, ULTRALYTICS_FIXED, id="ultralytics-get-flops"),
    pytest.param(YOLOV9, YOLOV9_FIXED, id="yolov9-model-info"),
    pytest.param(  # a decorator of the user's own stays, below ours
        ULTRALYTICS.replace("\ndef get_flops(", "\n@functools.lru_cache\ndef get_flops("),
        ULTRALYTICS_FIXED.replace("\ndef get_flops(", "\n@functools.lru_cache\ndef get_flops("),
        id="existing-decorator-kept",
    ),
    pytest.param(  # helper there (half-applied by hand), decorator missing
        ULTRALYTICS_FIXED.replace("@fall_back_to_full_size\n", ""),
        ULTRALYTICS_FIXED,
        id="decorator-missing",
    ),
]

NOOPS = [
    pytest.param(ULTRALYTICS_FIXED, id="ultralytics-applied"),
    pytest.param(YOLOV9_FIXED, id="yolov9-applied"),
    pytest.param(  # helpers moved to the end of the file by hand: still recognised
        "import torch\n\n\n@fall_back_to_full_size\n" + GET_FLOPS + "\n\n" + HELPER + "\n\n" + DECORATOR,
        id="helpers-moved",
    ),
    pytest.param(YOLOV9_FIXED.replace("  # yamlforge: the stride-sized", "  # the stride-sized"), id="comment-edited"),
]


@pytest.mark.parametrize(("before", "after"), FIXES)
def test_fixes(before, after):
    assert apply(before) == after
    assert apply(after) == after


@pytest.mark.parametrize("code", NOOPS)
def test_noop(code):
    assert apply(code) == code


ERRORS = [
    pytest.param(
        "def profile(model):\n    return 0\n", "no get_flops (Ultralytics) or model_info (YOLOv9)", 1, id="neither"
    ),
    pytest.param(
        "import torch\n\n\ndef model_info(model):\n    fs = ''\n",
        "expected a 'try:' computing FLOPs",
        4,
        id="model-info-no-try",
    ),
    pytest.param("def get_flops(model:\n    return 0\n", "not valid Python", 1, id="syntax-error"),
]


@pytest.mark.parametrize(("code", "message", "line"), ERRORS)
def test_unexpected_shape_is_one_clear_error(code, message, line):
    with pytest.raises(YamlforgeError) as info:
        apply(code)
    assert message in info.value.message
    assert info.value.where.startswith("torch_utils.py:")
    if line is not None:
        assert info.value.where == f"torch_utils.py:{line}"


FIXTURE_NAMES = [f"{kind}-{version}" for kind, version, _ in TARGETS]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_excerpt_before_after(name):
    """Each target's get_flops (YOLOv9: model_info), patched as reviewed in the .after file."""
    before = (FIXTURES / f"flops-{name}.py.before").read_text(encoding="utf-8")
    after = (FIXTURES / f"flops-{name}.py.after").read_text(encoding="utf-8")
    assert apply(before) == after
    assert apply(after) == after


@pytest.mark.parametrize(("kind", "version", "relpath"), REAL_FILES, ids=[f"{k}-{v}" for k, v, _ in REAL_FILES])
def test_full_real_file_idempotent_and_compiles(pristine, kind, version, relpath):
    code = (pristine(kind, version) / relpath).read_text(encoding="utf-8")
    once = fix_get_flops(code, filename=relpath)
    assert fix_get_flops(once, filename=relpath) == once
    compile(once, relpath, "exec")
    assert once.count("def gflops_at_full_size(") == 1
    assert once.count("@fall_back_to_full_size\ndef get_flops(") == (kind == "ultralytics")
    kept = Counter(once.splitlines())  # only insertions: every original line is still there
    assert all(kept[line] >= count for line, count in Counter(code.splitlines()).items())
