"""gen-yaml as a library: base names, edit syntax, recipes, spec args, applied check, strides, scale, nc, output."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.compile import GenRequest, compile_yaml, load_recipe, parse_edit, resolve_base, write_result
from yamlforge.patch.manifest import MANIFEST, AppliedModule, Manifest
from yamlforge.scratch import pristine_checkout
from yamlforge.targets import ULTRALYTICS, Target, detect_target

VERSION = "8.4.190"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PRISTINE = pristine_checkout("ultralytics", VERSION)
MODEL_FILES = sorted((PRISTINE / "ultralytics/cfg/models").rglob("*.yaml"))


@pytest.fixture
def repo(genyaml_repo):
    return genyaml_repo


def write_spec(folder: Path, name: str, *, stride: int | str = 1, args: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name.lower()}.py").write_text(f"import torch\n\n\nclass {name}(torch.nn.Module):\n    pass\n")
    spec = folder / f"{name.lower()}.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: {name}
        summary: test layer
        paper: "Me, 2026"
        source: {name.lower()}.py
        exports: [{name}]
        role: layer
        channels: keep
        stride: {stride}
        """) + args)
    return spec


def mark_applied(root: Path, *names: str) -> None:
    """What `yamlforge apply` records; only the manifest's module list matters to gen-yaml."""
    manifest = Manifest(target="ultralytics", modules={
        n: AppliedModule(spec_digest="0", exports=[n], role="layer", channels="keep", file=f"{n.lower()}.py")
        for n in names})
    (root / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(manifest.to_text())


def rows(text: str) -> list:
    data = YAML(typ="safe").load(text)
    return data["backbone"] + data["head"]


# ---------------------------------------------------------------- no-op: byte for byte


@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.relative_to(PRISTINE / "ultralytics/cfg/models").as_posix()
                                                    for p in MODEL_FILES])
def test_no_edits_reproduce_every_8_4_190_model_yaml_byte_for_byte(path):
    assert len(MODEL_FILES) > 60
    result = compile_yaml(GenRequest(str(path), repo=PRISTINE, dry_run=True))
    assert result.new_text == path.read_text(encoding="utf-8")
    assert result.diff() == "" and result.rows == []


# ---------------------------------------------------------------- edit syntax


@pytest.mark.parametrize("kind, value, layer, module, args, repeats", [
    ("replace", "4=SHSA", 4, "SHSA", (), None),
    ("replace", "layer4=SHSA", 4, "SHSA", (), None),
    ("replace", " 4 = SHSA ", 4, "SHSA", (), None),
    ("replace", "3=token_mixer(256, [3, 5], 'gelu')", 3, "token_mixer", ((None, "256"), (None, "[3, 5]"),
                                                                            (None, "'gelu'")), None),
    ("insert-after", "15=BiLevelRoutingAttention(n_win=7)*2", 15, "BiLevelRoutingAttention", (("n_win", "7"),), 2),
    ("insert-before", "0=nn.Identity()", 0, "nn.Identity", (), None),
    ("remove", "12", 12, None, (), None),
    ("remove", "layer12", 12, None, (), None),
])
def test_parse_edit(kind, value, layer, module, args, repeats):
    edit = parse_edit(kind, value)
    assert (edit.layer, edit.module, edit.args, edit.repeats) == (layer, module, args, repeats)


@pytest.mark.parametrize("kind, value, message", [
    ("replace", "4", "missing module"),
    ("replace", "x=Conv", "not a layer number"),
    ("replace", "-1=Conv", "not a layer number"),
    ("replace", "4=Conv*0", "repeats must be 1 or more"),
    ("replace", "4=Conv*-2", "repeats must be 1 or more"),
    ("replace", "4=Conv(1, [2)", "unbalanced"),
    ("replace", "4=Conv(a=1, 2)", "positional argument after a named one"),
    ("replace", "4=Conv(1,,2)", "empty argument"),
    ("replace", "4=3Conv", "cannot read"),
    ("remove", "4=Conv", "only a layer number"),
])
def test_parse_edit_refuses(kind, value, message):
    with pytest.raises(YamlforgeError, match=message) as info:
        parse_edit(kind, value)
    assert info.value.where == f"--{kind} {value}"


# ---------------------------------------------------------------- base names


@pytest.mark.parametrize("name, file, scale", [
    ("rtdetr-l", "rt-detr/rtdetr-l.yaml", None),
    ("yolov8n", "v8/yolov8.yaml", "n"),
    ("yolov8s-p2", "v8/yolov8-p2.yaml", "s"),
    ("yolo11s", "11/yolo11.yaml", "s"),
    ("yolov9c", "v9/yolov9c.yaml", None),
    ("yolov10n", "v10/yolov10n.yaml", "n"),
    ("yolov8.yaml", "v8/yolov8.yaml", None),
])
def test_resolve_base_like_the_target(name, file, scale):
    base = resolve_base(name, detect_target(PRISTINE))
    assert base.path == PRISTINE / "ultralytics/cfg/models" / file
    assert base.scale == scale


def test_unknown_base_lists_the_closest_names():
    with pytest.raises(YamlforgeError, match="closest: rtdetr-x, rtdetr-l"):
        resolve_base("rtdetr-q", detect_target(PRISTINE))


# ---------------------------------------------------------------- seed scenarios (text level)


def test_yolov8n_insert_after_15_gives_detect_16_19_22(repo):
    result = compile_yaml(GenRequest("yolov8n", [parse_edit("insert-after", "15=nn.Identity")], repo=repo))
    assert result.output_path == repo / "ultralytics/cfg/models/v8/yolov8n-Identity.yaml"
    out = rows(result.new_text)
    assert out[16][:3] == [-1, 1, "nn.Identity"] and out[-1][0] == [16, 19, 22]
    assert "# 22 (P5/32-large)" in result.new_text and "scales:" in result.new_text
    assert YAML(typ="safe").load(result.new_text)["scales"].keys() == {"n", "s", "m", "l", "x"}  # name keeps n


def test_stock_rtdetr_l_replace_layer4_shsa_is_refused_with_the_reason(repo, tmp_path):
    spec = write_spec(tmp_path / "specs", "SHSA")
    with pytest.raises(YamlforgeError) as info:
        compile_yaml(GenRequest("rtdetr-l", [parse_edit("replace", "layer4=SHSA")], repo=repo, spec_paths=(spec,)))
    assert str(info.value) == ("layer 4 is DWConv with stride 2 (P3/8 -> P4/16); replacing it with SHSA, which keeps "
                               "the resolution, would leave it and every layer after it at P3/8 instead of P4/16 "
                               "(layer 4)")
    assert info.value.hint.startswith("--insert-after 3=SHSA or --replace 3=SHSA")


def test_allow_stride_change_overrides(repo, tmp_path):
    spec = write_spec(tmp_path / "specs", "SHSA")
    mark_applied(repo, "SHSA")
    result = compile_yaml(GenRequest("rtdetr-l", [parse_edit("replace", "layer4=SHSA")], repo=repo,
                                     spec_paths=(spec,), allow_stride_change=True))
    assert rows(result.new_text)[4] == [-1, 1, "SHSA", []]


def test_inserting_a_downsampling_layer_is_refused(repo):
    with pytest.raises(YamlforgeError, match="has stride 2"):
        compile_yaml(GenRequest("rtdetr-l", [parse_edit("insert-after", "3=Conv(128, 3, 2)")], repo=repo))


def test_removing_a_downsampling_layer_is_refused(repo):
    with pytest.raises(YamlforgeError, match="layer 2 is DWConv with stride 2 .P2/4 -> P3/8.; removing it"):
        compile_yaml(GenRequest("rtdetr-l", [parse_edit("remove", "2")], repo=repo))


def test_a_2x_upsampler_spec_may_replace_nn_upsample(repo, tmp_path):
    spec = write_spec(tmp_path / "specs", "Up", stride="1/2")
    mark_applied(repo, "Up")
    result = compile_yaml(GenRequest("yolov8n", [parse_edit("replace", "10=Up")], repo=repo, spec_paths=(spec,)))
    assert rows(result.new_text)[10] == [-1, 1, "Up", []]


@pytest.mark.parametrize(("stride", "says"), [(1, "which keeps the resolution"), ("1/4", "which has stride 1/4")])
def test_replacing_nn_upsample_by_another_factor_is_refused(repo, tmp_path, stride, says):
    spec = write_spec(tmp_path / "specs", "Up", stride=stride)
    with pytest.raises(YamlforgeError,
                       match=f"layer 10 is nn.Upsample with stride 1/2 .*; replacing it with Up, {says}"):
        compile_yaml(GenRequest("yolov8n", [parse_edit("replace", "10=Up")], repo=repo, spec_paths=(spec,)))


def test_inserting_an_upsampler_where_resolution_must_stay_is_refused(repo, tmp_path):
    spec = write_spec(tmp_path / "specs", "Up", stride="1/2")
    with pytest.raises(YamlforgeError, match="Up has stride 1/2: inserted, it would change the resolution"):
        compile_yaml(GenRequest("yolov8n", [parse_edit("insert-after", "15=Up")], repo=repo, spec_paths=(spec,)))


def test_spec_module_not_applied_names_the_apply_command(repo, tmp_path):
    spec = write_spec(tmp_path / "specs", "SHSA")
    with pytest.raises(YamlforgeError, match="module SHSA is not applied") as info:
        compile_yaml(GenRequest("rtdetr-l", [parse_edit("insert-after", "3=SHSA")], repo=repo, spec_paths=(spec,)))
    assert info.value.hint == f"yamlforge apply --repo {repo.resolve()} --module SHSA"


def test_spec_defaults_fill_omitted_args(repo, tmp_path):
    spec = write_spec(tmp_path / "specs", "Mixer", args=textwrap.dedent("""\
        args:
          - name: dim
          - name: heads
            default: 8
          - name: mode
            default: nearest
          - name: norm
            default: null
        """))
    mark_applied(repo, "Mixer")
    result = compile_yaml(GenRequest("rtdetr-l", [parse_edit("replace", "3=Mixer(512, mode=\"x y\")")], repo=repo,
                                     spec_paths=(spec,)))
    assert "- [-1, 1, Mixer, [512, 8, \"x y\", None]] # stage 2" in result.new_text
    with pytest.raises(YamlforgeError, match="Mixer needs arg 'dim'"):
        compile_yaml(GenRequest("rtdetr-l", [parse_edit("replace", "3=Mixer")], repo=repo, spec_paths=(spec,)))
    with pytest.raises(YamlforgeError, match="Mixer has no arg 'width'"):
        compile_yaml(GenRequest("rtdetr-l", [parse_edit("replace", "3=Mixer(width=3)")], repo=repo,
                                spec_paths=(spec,)))


def test_unknown_module_suggests_close_names(repo):
    with pytest.raises(YamlforgeError, match="unknown module 'C2ff'; did you mean C2f"):
        compile_yaml(GenRequest("yolov8n", [parse_edit("replace", "2=C2ff")], repo=repo))


# ---------------------------------------------------------------- scale, nc, output


def test_output_named_without_a_scale_keeps_only_the_requested_row(repo, tmp_path):
    result = compile_yaml(GenRequest("yolov8s", [parse_edit("insert-after", "15=nn.Identity")], repo=repo,
                                     output=tmp_path / "mine.yaml"))
    assert list(YAML(typ="safe").load(result.new_text)["scales"]) == ["s"]
    assert "  s: [0.33, 0.50, 1024] # YOLOv8s summary" in result.new_text


def test_scale_rows_go_as_whole_lines_and_nc_changes_in_place_nothing_else(repo, tmp_path):
    base = (repo / "ultralytics/cfg/models/v8/yolov8.yaml").read_text()
    result = compile_yaml(GenRequest("yolov8s", repo=repo, nc=5, output=tmp_path / "mine.yaml"))
    kept = [line for line in base.splitlines(keepends=True) if not line.startswith(("  n:", "  m:", "  l:", "  x:"))]
    record = "# yamlforge: gen-yaml base=repo/ultralytics/cfg/models/v8/yolov8.yaml\n"  # what graph compares with
    assert result.new_text == record + "".join(kept).replace("nc: 80 #", "nc: 5 #", 1)


def test_flow_style_scales_are_not_cut(repo, tmp_path):
    base = repo / "ultralytics/cfg/models/mine-base.yaml"
    base.write_text("nc: 2\nscales: {n: [0.33, 0.25, 1024], s: [0.33, 0.50, 1024]}\n"
                    "backbone:\n  - [-1, 1, Conv, [64, 3, 2]]\nhead:\n  - [-1, 1, nn.Identity, []]\n")
    with pytest.raises(YamlforgeError, match="scales are one flow mapping") as err:
        compile_yaml(GenRequest(str(base), repo=repo, scale="s", output=tmp_path / "out.yaml"))
    assert err.value.where == "-o" and "one per line" in err.value.hint
    base.write_text(base.read_text().replace("scales: {n: [0.33, 0.25, 1024], s: [0.33, 0.50, 1024]}",
                                             "scales:\n  n: [0.33, 0.25, 1024]\n  s: [0.33, 0.50, 1024]"))
    result = compile_yaml(GenRequest(str(base), repo=repo, scale="s", output=tmp_path / "out.yaml"))  # the hint works
    assert "scales:\n  s: [0.33, 0.50, 1024]\nbackbone:" in result.new_text


def test_scale_option_names_the_output(repo):
    result = compile_yaml(GenRequest("yolov8", [parse_edit("insert-after", "15=nn.Identity")], repo=repo, scale="m"))
    assert result.output_path.name == "yolov8m-Identity.yaml"


@pytest.mark.parametrize("base, scale, message", [
    ("rtdetr-l", "x", "single scale"),
    ("yolov10n", "s", "single scale"),
    ("yolov8", "q", "scale 'q' is not in the base"),
])
def test_bad_scale(repo, base, scale, message):
    with pytest.raises(YamlforgeError, match=message):
        compile_yaml(GenRequest(base, repo=repo, scale=scale))


def test_output_name_that_implies_another_scale_is_refused(repo, tmp_path):
    with pytest.raises(YamlforgeError, match="build scale 'x', not 'n'"):
        compile_yaml(GenRequest("yolov8n", repo=repo, output=tmp_path / "yolov8x-mine.yaml"))


def test_nc_is_rewritten_in_place(repo):
    result = compile_yaml(GenRequest("rtdetr-l", repo=repo, nc=3))
    assert "\nnc: 3 # number of classes\n" in result.new_text
    assert result.output_path.name == "rtdetr-l-nc3.yaml"


def test_existing_output_needs_force(repo):
    request = GenRequest("rtdetr-l", [parse_edit("insert-after", "3=nn.Identity")], repo=repo)
    write_result(compile_yaml(request))
    with pytest.raises(YamlforgeError, match="exists; nothing was written"):
        compile_yaml(request)
    request.force = True
    assert compile_yaml(request).exists


GUESS_84 = """
def guess_model_scale(model_path):
    try:
        return re.search(r"yolo(e-)?[v]?\\d+([nslmx])", Path(model_path).stem).group(2)
    except AttributeError:
        return ""
"""


@pytest.mark.parametrize("tasks, pattern", [
    (GUESS_84, r"yolo(e-)?[v]?\d+([nslmx])"),
    ("def guess_model_scale(p):\n    with x:\n        return re.search(r'yolov\\d+([nslmx])', p).group(1)\n",
     r"yolov\d+([nslmx])"),
    ("def other(p):\n    return re.search('a(b)', p)\n" + GUESS_84.replace("    except", "# note\n    except"),
     r"yolo(e-)?[v]?\d+([nslmx])"),
    ("def guess_model_task(p):\n    return re.search('a(b)', p)\n", None),
    (GUESS_84.replace('r"yolo', 'PATTERN or r"yolo'), None),
], ids=["8.4", "8.0-single-quotes", "after-another-search", "no-guess-function", "not-a-constant"])
def test_scale_pattern_is_the_string_guess_model_scale_searches_with(tmp_path, tasks, pattern):
    (tmp_path / "ultralytics/nn").mkdir(parents=True)
    (tmp_path / "ultralytics/nn/tasks.py").write_text("import re\n" + tasks + "\n\nclass Model:\n    pass\n")
    assert Target(tmp_path, ULTRALYTICS, None).scale_pattern == pattern


# ---------------------------------------------------------------- recipes


@pytest.mark.parametrize("recipe", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_recipes_parse(recipe):
    loaded = load_recipe(EXAMPLES / recipe)
    assert loaded.base and (loaded.edits or loaded.backbone)  # backbone swaps: tests/unit/test_genyaml_backbone.py


def test_recipe_edits_match_the_same_cli_edits(repo, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("base: rtdetr-l\nedits:\n  - insert-after: 3=nn.Identity\n  - remove: layer12\nnc: 5\n")
    from_recipe = compile_yaml(GenRequest(None, repo=repo, recipe=recipe))
    from_cli = compile_yaml(GenRequest("rtdetr-l", [parse_edit("insert-after", "3=nn.Identity"),
                                                    parse_edit("remove", "12")], repo=repo, nc=5))
    assert from_recipe.new_text == from_cli.new_text


def test_gelan_example_recipe_compiles_against_yolov9(tmp_path):
    root = pristine_checkout("yolov9", "0.0.4")
    recipe = tmp_path / "r.yaml"
    shutil.copytree(EXAMPLES / "models", tmp_path / "models")
    recipe.write_text("base: models/gelan-c.yaml\nedits:\n  - insert-after: 15=nn.Identity\n")
    result = compile_yaml(GenRequest(None, repo=root, recipe=recipe))
    assert result.output_path == tmp_path / "models/gelan-c-Identity.yaml"
    assert rows(result.new_text)[-1][0] == [16, 19, 22]
    assert "   [-1, 1, nn.Identity, []],  # 16\n\n   # avg-conv down merge" in result.new_text


@pytest.mark.parametrize("body, message, line", [
    ("base: rtdetr-l\nedit: []\n", "unknown recipe key 'edit'", 2),
    ("base: rtdetr-l\nedits:\n  - swap: 3=Conv\n", "unknown edit 'swap'", 3),
    ("base: rtdetr-l\nedits:\n  - replace: 3\n", "missing module", 3),
    ("base: rtdetr-l\nedits: 3=Conv\n", "must be a list", 2),
    ("base: rtdetr-l\nnc: -1\n", "'nc' must be a positive", 2),
    ("- just a list\n", "a recipe is a mapping", 1),
])
def test_bad_recipes(tmp_path, body, message, line):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(body)
    with pytest.raises(YamlforgeError, match=message) as info:
        load_recipe(recipe)
    assert re.fullmatch(rf"{re.escape(str(recipe))}:{line}( \(.*\))?", info.value.where), info.value.where
