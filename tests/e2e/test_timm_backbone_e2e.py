"""Issue 22's acceptance on real checkouts: timm models as backbones via ``gen-yaml --backbone timm:NAME``.

Per target a CNN, a mobile model and a hierarchical transformer or hybrid, each ``gen-yaml`` -> ``verify --train``
(build, GFLOPs, backward, one epoch with the target's own trainer, reload; on 8.4 also ``ULTRALYTICS_SAFE_LOAD=1``).
On Ultralytics the three are spread over yolov8n and rtdetr-l, so both heads' trainers run a timm backbone. The
models of one image size are verified by one ``verify A B C``, one run of the target's Python.
"""

from __future__ import annotations

import json
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from conftest import run_in_checkout
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.edits import yaml_text
from yamlforge.modelyaml.timm import pick_strides, stages_of
from yamlforge.runners import timm_runner
from yamlforge.scratch import YOLOV5_RELEASE, YOLOV7_RELEASE, YOLOV9_RELEASE, make_checkout

GELAN_C = str(Path(__file__).resolve().parents[2] / "examples" / "models" / "gelan-c.yaml")
CNN, MOBILE, HIERARCHICAL = "resnet18", "mobilenetv3_small_100", "efficientvit_b0"
# target -> (kind, version, [(base, timm model, imgsz)]); 8.0.227's RT-DETR decoder needs >= 300 anchors (128 px),
# 8.4.190's takes as many as there are (its RT-DETR scenarios train at 64 too: tests/e2e/test_scenarios_e2e.py)
MATRIX = {
    "ultralytics-8.4.190": ("ultralytics", "8.4.190", [("yolov8n", CNN, 64), ("yolov8n", MOBILE, 64),
                                                       ("rtdetr-l", HIERARCHICAL, 64)]),
    "ultralytics-8.0.227": ("ultralytics", "8.0.227", [("yolov8n", MOBILE, 64), ("rtdetr-l", "convnext_atto", 128),
                                                       ("yolov8n", HIERARCHICAL, 64)]),
    "yolov9": ("yolov9", YOLOV9_RELEASE, [(GELAN_C, MOBILE, 64), (GELAN_C, CNN, 64), (GELAN_C, HIERARCHICAL, 64)]),
    "yolov5": ("yolov5", YOLOV5_RELEASE, [("yolov5s", HIERARCHICAL, 64), ("yolov5s", CNN, 64),
                                          ("yolov5s", MOBILE, 64)]),
    "yolov7": ("yolov7", YOLOV7_RELEASE, [("yolov7-tiny", CNN, 64), ("yolov7-tiny", MOBILE, 64),
                                          ("yolov7-tiny", HIERARCHICAL, 64)]),
}


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    """target -> a checkout with TimmBackbone applied, built on first use and shared by this file's tests."""
    made: dict[str, Path] = {}

    def get(target: str) -> Path:
        if target not in made:
            kind, version, _ = MATRIX[target]
            folder = kind if kind in ("yolov5", "yolov7") else "repo"  # packaged roots keep their package's name
            repo = make_checkout(kind, version, tmp_path_factory.mktemp(target) / folder)
            cli("apply", "--repo", str(repo), "--module", "TimmBackbone")
            made[target] = repo
        return made[target]

    return get


def gen(repo: Path, base: str, backbone: str, out: Path, *extra: str, code: int = 0) -> str:
    return cli("gen-yaml", base, "--repo", str(repo), "--backbone", f"timm:{backbone}", "-o", str(out), *extra,
               code=code)


def verify(yaml: Path, repo: Path, imgsz: int, *extra: str) -> dict:
    result = CliRunner().invoke(app, ["verify", str(yaml), "--repo", str(repo), "--imgsz", str(imgsz), "--json",
                                      *extra])
    report = json.loads(result.stdout)
    assert report["ok"], [c for c in report["checks"] if c["status"] == "fail"]
    return report


def verify_all(yamls: list[Path], repo: Path, imgsz: int, *extra: str) -> list[dict]:
    """``verify A B ... --json``: the reports of the models, verified in one run of the target's Python."""
    result = CliRunner().invoke(app, ["verify", *map(str, yamls), "--repo", str(repo), "--imgsz", str(imgsz),
                                      "--json", *extra])
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


@pytest.mark.parametrize("target", sorted(MATRIX))
def test_cnn_mobile_and_hierarchical_timm_backbones_train(applied, tmp_path, target):
    repo = applied(target)
    for size in sorted({imgsz for *_, imgsz in MATRIX[target][2]}):
        outs = []
        for base, model, _ in [row for row in MATRIX[target][2] if row[2] == size]:
            outs.append(tmp_path / f"{model}.yaml")
            gen(repo, base, model, outs[-1])
            row = outs[-1].read_text().split("backbone:")[1].split("head:")[0]
            assert f"TimmBackbone, [{model}, [8, 16, 32], {{}}]" in row  # one row, the three strides the head reads
        reports = verify_all(outs, repo, size, "--train")
        assert [Path(report["yaml"]).name for report in reports] == [out.name for out in outs]
        for report in reports:
            checks = {c["name"] for c in report["checks"] if c["status"] == "pass"}
            assert report["ok"] and {"build", "forward", "backward", "train", "reload"} <= checks, report["checks"]
            first = report["layers"][0]
            assert first["module"] == "TimmBackbone" and first["params"] > 0
            if target == "ultralytics-8.4.190":
                assert "safe_reload" in checks  # ULTRALYTICS_SAFE_LOAD=1: the layer pickles without timm's classes


def test_a_timm_backbone_exports_to_onnx(applied, tmp_path):
    repo = applied("ultralytics-8.4.190")
    gen(repo, "yolov8n", MOBILE, tmp_path / "m.yaml")
    report = verify(tmp_path / "m.yaml", repo, 64, "--export", "onnx")
    assert any(c["name"].startswith("export") and c["status"] == "pass" for c in report["checks"]), report["checks"]


def test_swin_gets_timm_dynamic_size_and_vit_is_refused(applied, tmp_path):
    repo = applied("ultralytics-8.4.190")
    gen(repo, "yolov8n", "swin_tiny_patch4_window7_224", tmp_path / "swin.yaml")
    swin_row = "[swin_tiny_patch4_window7_224, [8, 16, 32], {dynamic_img_size: True}]"
    assert swin_row in (tmp_path / "swin.yaml").read_text()
    refusals = {
        "vit_tiny_patch16_224": "vit_tiny_patch16_224 has no feature map at stride 8, 32, which the head reads",
        "efficientformer_l1": "efficientformer_l1 accepts only one input size",
        "resnt18": "timm 1.0.31 has no model 'resnt18'; close: resnet18",
    }
    for model, message in refusals.items():
        output = gen(repo, "yolov8n", model, tmp_path / f"{model}.yaml", code=2)
        assert message.replace("1.0.31", timm_runner_version()) in output
        assert output.count("error:") == 1 and not (tmp_path / f"{model}.yaml").exists()


def timm_runner_version() -> str:
    import timm

    return timm.__version__


CHECK_FILE = """
import json, os, sys
if sys.argv[4:]:  # pretrained=True: timm's own loader, offline, from this Hugging Face cache
    os.environ.update(HF_HOME=sys.argv[4], HF_HUB_OFFLINE="1")
import torch
from safetensors.torch import load_file
from ultralytics import YOLO
body = YOLO(sys.argv[2]).model.model[0].body.state_dict()
path = sys.argv[3]
saved = load_file(path) if path.endswith(".safetensors") else torch.load(path, map_location="cpu")
flat = {k.replace(".", "_"): k for k in saved}  # timm's features_only names join nested stages with "_"
equal = [k for k, v in body.items() if torch.equal(v, saved[flat[k.replace(".", "_")]])]
print(json.dumps({"tensors": len(body), "equal": len(equal)}))
"""


def tensors_equal_to(repo: Path, model: Path, weights: Path, *hf_home: Path) -> dict:
    """How many of the built TimmBackbone's tensors there are, and how many equal the file's."""
    code = f"import sys; sys.argv[2:] = {[str(model), str(weights), *map(str, hf_home)]!r}\n"
    return json.loads(run_in_checkout(repo, code + textwrap.dedent(CHECK_FILE)).stdout.strip().splitlines()[-1])


def test_pretrained_file_fills_every_tensor_and_a_file_of_another_model_is_refused(applied, tmp_path):
    import timm

    repo = applied("ultralytics-8.4.190")
    torch.save(timm.create_model(CNN).state_dict(), tmp_path / "r18.pth")  # fresh random weights: only a load matches
    torch.save(timm.create_model("convnext_atto").state_dict(), tmp_path / "other.pth")
    gen(repo, "yolov8n", CNN, tmp_path / "r18.yaml", "--set", f"pretrained_file={tmp_path / 'r18.pth'}")
    counts = tensors_equal_to(repo, tmp_path / "r18.yaml", tmp_path / "r18.pth")
    assert counts["tensors"] > 100 and counts["equal"] == counts["tensors"]

    output = gen(repo, "yolov8n", CNN, tmp_path / "other.yaml", "--set", f"pretrained_file={tmp_path / 'other.pth'}",
                 code=2)
    assert f"{tmp_path / 'other.pth'} does not load into resnet18" in output
    assert output.count("error:") == 1 and not (tmp_path / "other.yaml").exists()


def test_pretrained_true_loads_through_timms_own_hub_cache(applied, tmp_path):
    """``pretrained=true``: timm's loader fetches the model's default tag from the Hugging Face hub cache; the test
    puts a file there (the layout huggingface_hub reads offline) instead of downloading one."""
    import timm
    from safetensors.torch import save_file

    repo = applied("ultralytics-8.4.190")
    hub_id = timm.models.get_pretrained_cfg(CNN).hf_hub_id  # timm/resnet18.a1_in1k
    cached = tmp_path / "hf" / "hub" / f"models--{hub_id.replace('/', '--')}"
    revision = "0" * 40
    (cached / "refs").mkdir(parents=True)
    (cached / "refs" / "main").write_text(revision)
    (cached / "snapshots" / revision).mkdir(parents=True)
    weights = cached / "snapshots" / revision / "model.safetensors"
    save_file(timm.create_model(CNN).state_dict(), str(weights))
    gen(repo, "yolov8n", CNN, tmp_path / "r18.yaml", "--set", "pretrained=true")
    assert f"[{CNN}, [8, 16, 32], {{pretrained: True}}]" in (tmp_path / "r18.yaml").read_text()
    counts = tensors_equal_to(repo, tmp_path / "r18.yaml", weights, tmp_path / "hf")
    assert counts["tensors"] > 100 and counts["equal"] == counts["tensors"]


# Across families: CNNs, mobile nets, hierarchical transformers and hybrids, plain ViTs, fixed-size models.
SWEEP = ("resnet18", "resnet50d", "resnext26ts", "regnetx_002", "regnety_002", "convnext_atto", "convnextv2_atto",
         "cspdarknet53", "dla34", "densenet121", "vgg11", "ghostnet_100", "rexnet_100", "efficientnet_b0",
         "tf_efficientnetv2_b0", "mobilenetv2_050", "mobilenetv3_small_100", "mobilenetv4_conv_small", "lcnet_050",
         "repvit_m0_9", "fastvit_t8", "efficientvit_b0", "efficientvit_m0", "edgenext_xx_small", "mobilevit_xxs",
         "swin_tiny_patch4_window7_224", "pvt_v2_b0", "poolformer_s12", "levit_128s", "vit_tiny_patch16_224",
         "efficientformer_l1", "coat_lite_tiny", "hgnetv2_b0", "tiny_vit_5m_224")
FORWARD = """
import json, sys, torch
from ultralytics import YOLO
shapes = {}
for name, path in json.loads(sys.argv[2]).items():
    net = YOLO(path).model.eval()
    with torch.no_grad():
        feats = net.model[0](torch.rand(1, 3, 64, 64))
        net(torch.rand(1, 3, 64, 64))
    shapes[name] = [list(f.shape[2:]) for f in feats]
print(json.dumps(shapes))
"""


def test_sweep_of_timm_models_accepted_ones_build_and_run_forward_in_yolov8n(applied, tmp_path):
    """Each name through gen-yaml's decision (the runner's answer, then the head's strides) in this process; the
    accepted ones all built and run in one subprocess of the 8.4 checkout."""
    repo = applied("ultralytics-8.4.190")
    template = tmp_path / "template.yaml"
    gen(repo, "yolov8n", CNN, template)
    accepted, refused = {}, {}
    for name in SWEEP:
        try:
            stages = stages_of(timm_runner.info(name, {}, timm_runner.DEFAULT_SIZES), name, f"timm:{name}")
            strides = pick_strides(stages, [Fraction(8), Fraction(16), Fraction(32)], f"timm:{name}")
        except YamlforgeError as exc:
            refused[name] = exc.message
            continue
        path = tmp_path / f"{name}.yaml"
        row = f"[{name}, {yaml_text(list(strides))}, {yaml_text(stages.options)}]"
        path.write_text(template.read_text().replace(f"[{CNN}, [8, 16, 32], {{}}]", row))
        accepted[name] = str(path)
    print("accepted:", sorted(accepted), "\nrefused:", json.dumps(refused, indent=1))
    assert len(SWEEP) >= 30 and len(accepted) >= 20
    assert {"vit_tiny_patch16_224", "efficientformer_l1"} <= set(refused)
    assert all("\n" not in why and why for why in refused.values())
    code = f"import sys; sys.argv[2:] = [{json.dumps(accepted)!r}]\n"
    shapes = json.loads(run_in_checkout(repo, code + textwrap.dedent(FORWARD)).stdout.strip().splitlines()[-1])
    assert shapes == {name: [[8, 8], [4, 4], [2, 2]] for name in accepted}


def test_weights_fills_a_timm_row_from_a_timm_state_dict(applied, tmp_path):
    """``yamlforge weights --load TimmBackbone=FILE``: timm's own keys, no mapping written for the model."""
    import timm

    repo = applied("ultralytics-8.4.190")
    torch.save(timm.create_model("convnext_atto").state_dict(), tmp_path / "cx.pth")  # nested stages: stages.0 ...
    gen(repo, "yolov8n", "convnext_atto", tmp_path / "cx.yaml")
    report = json.loads(cli("weights", str(tmp_path / "cx.yaml"), "--repo", str(repo), "--load",
                            f"TimmBackbone={tmp_path / 'cx.pth'}", "-o", str(tmp_path / "cx.pt"), "--json"))
    assert report["ok"] and (tmp_path / "cx.pt").is_file()
    (layer,) = report["loads"][0]["layers"]
    assert layer["matched"] and not layer["missing"] and not layer["mismatched"]
    assert set(layer["unexpected"]) <= {"head.norm.weight", "head.norm.bias", "head.fc.weight", "head.fc.bias"}


def test_list_timm_shows_widths_strides_and_the_heads_each_model_fits(tmp_path, monkeypatch):
    monkeypatch.setenv("YAMLFORGE_CACHE", str(tmp_path))  # a fresh survey cache: this test builds, the next call reads
    for _ in range(2):
        listing = json.loads(cli("list", "--timm", "resnet1?t", "--json"))
        rows = {row["name"]: row for row in listing["models"]}
        assert set(rows) == {"resnet10t", "resnet14t"}
        assert rows["resnet10t"]["channels"] == [64, 64, 128, 256, 512]
        assert rows["resnet10t"]["reductions"] == [2, 4, 8, 16, 32] and rows["resnet10t"]["fits"] == ["P3-P5"]
    cached = json.loads((tmp_path / "timm-survey.json").read_text())
    assert set(cached[listing["timm"]]) == {"resnet10t", "resnet14t"}
    table = cli("list", "--timm", "vit_tiny_patch16_224")  # all stages at 16: listed, fits no head
    assert table.startswith("timm ") and "0 of 1 fit a detection head" in table and "fixed" in table


def test_graph_draws_a_timm_backbone_as_one_node_with_a_port_per_output(applied, tmp_path):
    repo = applied("ultralytics-8.4.190")
    gen(repo, "yolov8n", "convnext_atto", tmp_path / "cx.yaml")
    cli("graph", str(tmp_path / "cx.yaml"), "--repo", str(repo), "-o", str(tmp_path / "cx.dot"))
    dot = (tmp_path / "cx.dot").read_text()
    assert dot.count("TimmBackbone</B>") == 1 and "<B>0-2 TimmBackbone</B>" in dot
    for port, label in enumerate(("80 · P3/8", "160 · P4/16", "320 · P5/32")):  # convnext_atto's stage widths
        assert f'PORT="o{port}" BORDER="1"><FONT POINT-SIZE="8">{label}<' in dot
        assert f"n0:o{port}:s -> " in dot  # the head reads every output


def test_compare_reports_a_timm_backbone_against_the_stock_model(applied, tmp_path):
    repo = applied("ultralytics-8.4.190")
    gen(repo, "yolov8n", MOBILE, tmp_path / "m.yaml")
    result = CliRunner().invoke(app, ["compare", "yolov8n.yaml", str(tmp_path / "m.yaml"), "--repo", str(repo),
                                      "--imgsz", "64", "--runs", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    stock, timm_row = json.loads(result.stdout)["rows"]
    assert stock["ok"] and timm_row["ok"] and timm_row["layers"] == 14  # one backbone row for yolov8n's ten
    assert 0 < timm_row["parameters"] != stock["parameters"] and timm_row["gflops"] > 0


def test_the_row_carries_the_strides_each_head_reads(applied, tmp_path):
    repo = applied("ultralytics-8.4.190")
    gen(repo, "yolov8n-p2", CNN, tmp_path / "p2.yaml")  # a P2 head reads stride 4 too: four outputs, slots 0-3
    p2_row = f"- [-1, 1, TimmBackbone, [{CNN}, [4, 8, 16, 32], {{}}]] # 0-3: P2/4, P3/8"
    assert p2_row in (tmp_path / "p2.yaml").read_text()
    output = gen(repo, "yolov8n-p6", CNN, tmp_path / "p6.yaml", code=2)
    assert "resnet18 has no feature map at stride 64, which the head reads (its stages: 2, 4, 8, 16, 32)" in output
    assert output.count("error:") == 1 and not (tmp_path / "p6.yaml").exists()
