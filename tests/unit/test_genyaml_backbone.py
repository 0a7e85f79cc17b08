"""gen-yaml --backbone and multi-output rows: slot numbering, head rewiring by stride, edits around a backbone row."""

from __future__ import annotations

import re
import shutil
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from test_genyaml import EXAMPLES, mark_applied, rows
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.compile import GenRequest, compile_yaml, load_recipe, parse_backbone, parse_edit
from yamlforge.modelyaml.graph import output_strides
from yamlforge.modelyaml.layout import ModelLayout
from yamlforge.patch.manifest import MANIFEST, AppliedModule, Manifest
from yamlforge.scratch import pristine_checkout

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "backbone"
REVCOL = ["revcol_tiny", "revcol_small", "RevCol"]
REVCOL_ROW = [-1, 1, "revcol_tiny", [True, 0.0]]  # the spec's defaults, written out


@pytest.fixture
def repo(genyaml_repo):
    return genyaml_repo


def gen(repo: Path, base: str, backbone: str | None = "revcol_tiny", *edits: tuple[str, str], **options):
    """compile_yaml as the CLI calls it, written nowhere."""
    return compile_yaml(GenRequest(base, [parse_edit(k, v) for k, v in edits], repo=repo, dry_run=True,
                                   backbone=parse_backbone(backbone) if backbone else None, **options))


def backbone_spec(folder: Path, strides: list[int], name: str = "SyntheticBackbone") -> Path:
    """A backbone-role spec over the synthetic test backbone (tests/fixtures/backbone/synthetic_backbone.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "synthetic_backbone.py", folder / "synthetic_backbone.py")
    spec = folder / f"{name.lower()}.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: {name}
        summary: test backbone
        paper: "Me, 2026"
        source: synthetic_backbone.py
        exports: [{name}]
        role: backbone
        stride: {strides}
        args:
          - name: widths
            default: [32, 64, 128]
          - name: first_stride
            default: 8
        """))
    return spec


# ---------------------------------------------------------------- stock bases: head reads P3, P4, P5 by stride

# The published RevCol RT-DETR recipe's head wiring, in yamlforge's slot numbering (backbone in slots 0-3 = P2..P5):
# input_proj.2 reads P5 (the -1 right after the backbone), input_proj.1 reads P4 (slot 2), input_proj.0 reads P3
# (slot 1), and the decoder reads X3, F4, F5.
RTDETR_L_REVCOL_HEAD = [
    [-1, 1, "Conv", [256, 1, 1, "None", 1, 1, False]],  # 4 input_proj.2 <- P5
    [-1, 1, "AIFI", [1024, 8]],
    [-1, 1, "Conv", [256, 1, 1]],  # 6 Y5
    [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
    [2, 1, "Conv", [256, 1, 1, "None", 1, 1, False]],  # 8 input_proj.1 <- P4
    [[-2, -1], 1, "Concat", [1]],
    [-1, 3, "RepC3", [256]],
    [-1, 1, "Conv", [256, 1, 1]],  # 11 Y4
    [-1, 1, "nn.Upsample", ["None", 2, "nearest"]],
    [1, 1, "Conv", [256, 1, 1, "None", 1, 1, False]],  # 13 input_proj.0 <- P3
    [[-2, -1], 1, "Concat", [1]],
    [-1, 3, "RepC3", [256]],  # 15 X3
    [-1, 1, "Conv", [256, 3, 2]],
    [[-1, 11], 1, "Concat", [1]],
    [-1, 3, "RepC3", [256]],  # 18 F4
    [-1, 1, "Conv", [256, 3, 2]],
    [[-1, 6], 1, "Concat", [1]],
    [-1, 3, "RepC3", [256]],  # 21 F5
    [[15, 18, 21], 1, "RTDETRDecoder", ["nc"]],
]


def test_rtdetr_l_gets_the_published_revcol_head_wiring(repo):
    mark_applied(repo, *REVCOL)
    result = gen(repo, "rtdetr-l")
    assert result.output_path.name == "rtdetr-l-revcol_tiny.yaml"
    assert rows(result.new_text) == [REVCOL_ROW] + RTDETR_L_REVCOL_HEAD
    # comments follow the slots; the backbone row says which slots hold which stride
    assert "  - [-1, 1, revcol_tiny, [True, 0.0]] # 0-3: P2/4, P3/8, P4/16, P5/32\n\nhead:\n" in result.new_text
    for line in ("# 8 input_proj.1", "# X3 (15), fpn_blocks.1", "# F5 (21), pan_blocks.1", "# 11, Y4"):
        assert line in result.new_text
    assert "HGBlock" not in result.new_text and "stage 1" not in result.new_text
    header = result.old_text[:result.old_text.index("backbone:")]  # kept, below the lines naming the base and map
    base_line, map_line, rest = result.new_text.split("\n", 2)
    assert base_line == f"# yamlforge: gen-yaml base={result.base_path.name}"
    assert map_line == "# yamlforge: layers 10-28>1-19 rows=29>20"  # the head kept, the 10 backbone rows gone
    assert rest.startswith(header)


# (base, old backbone layer the head reads -> new slot) : head entries that read the old backbone, by stride
STOCK = [
    ("yolov8n", {9: 3, 6: 2, 4: 1}, [9, 12, 15], "yolov8n-revcol_tiny.yaml"),
    ("yolov8s", {9: 3, 6: 2, 4: 1}, [9, 12, 15], "yolov8s-revcol_tiny.yaml"),
    ("yolo11n", {10: 3, 6: 2, 4: 1}, [9, 12, 15], "yolo11n-revcol_tiny.yaml"),
    ("rtdetr-l", {9: 3, 7: 2, 3: 1}, [15, 18, 21], "rtdetr-l-revcol_tiny.yaml"),
    ("rtdetr-resnet50", {4: 3, 3: 2, 2: 1}, [15, 18, 21], "rtdetr-resnet50-revcol_tiny.yaml"),
]


def head_reads(table: list, first_head: int) -> list[tuple[int, int]]:
    """(head row number from 0, slot read) of every `from` entry of the head."""
    out = []
    for n, (f, *_rest) in enumerate(table[first_head:]):
        for e in f if isinstance(f, list) else [f]:
            out.append((n, first_head + n + e if e < 0 else e))
    return out


@pytest.mark.parametrize("base, mapping, detect, name", STOCK, ids=[s[0] for s in STOCK])
def test_stock_heads_read_the_new_output_with_the_same_stride(repo, base, mapping, detect, name):
    mark_applied(repo, *REVCOL)
    result = gen(repo, base)
    old, new = rows(result.old_text), rows(result.new_text)
    n_backbone = len(YAML(typ="safe").load(result.old_text)["backbone"])
    assert new[0] == REVCOL_ROW and [r[1:] for r in new[1:]] == [r[1:] for r in old[n_backbone:]]
    shift = n_backbone - 4  # head row k: slot n_backbone + k before, 4 + k after
    expected = [(n, mapping[s] if s < n_backbone else s - shift) for n, s in head_reads(old, n_backbone)]
    assert [(n, s) for n, s in head_reads([None] * 3 + new, 4)] == expected
    assert new[-1][0] == detect
    assert result.output_path.name == name


def test_yolov8s_output_name_keeps_the_scale_and_every_scale_row(repo):
    mark_applied(repo, *REVCOL)
    result = gen(repo, "yolov8s")
    assert result.output_path.name == "yolov8s-revcol_tiny.yaml"  # guess_model_scale reads 's' from it
    assert list(YAML(typ="safe").load(result.new_text)["scales"]) == ["n", "s", "m", "l", "x"]


def test_gelan_c_flow_sections(tmp_path):
    root = tmp_path / "yolov9"
    shutil.copytree(pristine_checkout("yolov9", "0.0.4"), root)
    (root / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(Manifest(target="yolov9", modules={"RevCol": AppliedModule(
        spec_digest="0", exports=REVCOL[:2], role="backbone", channels="backbone", file="revcol.py")}).to_text())
    shutil.copy(EXAMPLES / "models" / "gelan-c.yaml", tmp_path / "gelan-c.yaml")
    result = compile_yaml(GenRequest(str(tmp_path / "gelan-c.yaml"), repo=root, dry_run=True,
                                     backbone=parse_backbone("revcol_tiny")))
    assert result.output_path == tmp_path / "gelan-c-revcol_tiny.yaml"
    table = rows(result.new_text)
    assert table[0] == REVCOL_ROW and table[1] == [-1, 1, "SPPELAN", [512, 256]]  # reads P5
    assert table[3][0] == [-1, 2] and table[6][0] == [-1, 1]  # cat backbone P4, P3
    assert table[-1][0] == [10, 13, 16]
    assert "  [\n   # conv down\n   [-1, 1, revcol_tiny, [True, 0.0]],  # 0-3: P2/4, P3/8, P4/16, P5/32\n  ]\n" \
        in result.new_text
    assert "   [-1, 1, RepNCSPELAN4, [256, 256, 128, 1]],  # 10 (P3/8-small)\n" in result.new_text


# ---------------------------------------------------------------- a K=3 backbone anywhere: graph level

THIRD = (FIXTURES / "synthetic-third-rtdetr.yaml").read_text()  # SyntheticBackbone at row 2, slots 2-4


def three(module: str, args=None) -> int:
    return 3 if module == "SyntheticBackbone" else 1


def edited(text: str, *edits: tuple[str, str]) -> str:
    layout = ModelLayout(text)
    graph = layout.graph(three)
    for kind, value in edits:
        edit = parse_edit(kind, value)
        if kind == "remove":
            graph.remove(edit.layer, edit.option)
        else:
            getattr(graph, kind.replace("-", "_"))(edit.layer, edit.module, [], "[]", 1, edit.option)
    return layout.render(graph).text


def test_multi_output_row_takes_consecutive_slots():
    layout = ModelLayout(THIRD)
    graph = layout.graph(three)
    assert [graph.base_slot[b.key] for b in graph.base[:5]] == [0, 1, 2, 5, 6]
    assert graph.slot_owner[3] == (2, 1) and graph.slot_owner[5] == (3, 0)
    head = graph.base[3:]
    assert (head[0].refs[0].producer, head[0].refs[0].output) == (2, 2)  # `-1` after it: its last output
    assert [(r.producer, r.output) for r in graph.base[7].refs] == [(2, 1)]  # `3`: P4
    assert layout.render(graph).text == THIRD

    def factor(layer):  # each output relative to the backbone's input (stride 4 after two stride-2 convs)
        if layer.module == "SyntheticBackbone":
            return Fraction(2), Fraction(4), Fraction(8)
        return Fraction(2) if layer.module == "Conv" and layer.args[1:3] == [3, 2] else Fraction(1)

    strides = output_strides(graph.base, factor)
    assert [strides[2, k] for k in range(3)] == [8, 16, 32]
    assert strides[3, 0] == 32 and strides[7, 0] == 16  # the head's first row reads P5, input_proj.1 P4
    assert output_strides(graph.base, lambda layer: Fraction(1))[2, 0] is None  # one factor for 3 outputs


def test_without_slot_counts_the_same_file_reads_as_one_slot_per_row():
    with pytest.raises(YamlforgeError, match="layer 21: from 22 points to a layer that does not exist"):
        ModelLayout(THIRD).graph()


def test_insert_before_backbone_row_renumbers_everything_after_it():
    out = edited(THIRD, ("insert-before", "2=nn.Identity"))
    assert "  - [-1, 1, nn.Identity, []] # 2\n  - [-1, 1, SyntheticBackbone, [[32, 64, 128], 2]] # 3-5: P3/8" in out
    assert "  - [4, 1, Conv, [64, 1, 1, None, 1, 1, False]] # 10 input_proj.1 (backbone P4)" in out
    assert "  - [3, 1, Conv, [64, 1, 1, None, 1, 1, False]] # 15 input_proj.0 (backbone P3)" in out
    assert rows(out)[-1][0] == [17, 20, 23]


def test_remove_before_backbone_row_renumbers_its_slot_range():
    out = edited(THIRD, ("remove", "1"))
    assert "  - [-1, 1, SyntheticBackbone, [[32, 64, 128], 2]] # 1-3: P3/8, P4/16, P5/32\n" in out
    assert "  - [2, 1, Conv, [64, 1, 1, None, 1, 1, False]] # 8 input_proj.1" in out
    assert rows(out)[-1][0] == [15, 18, 21]


@pytest.mark.parametrize("slot, new_from, reads", [
    # (from of the new row at slot 5, from of input_proj.2 / input_proj.1 / input_proj.0 at slots 6 / 10 / 15)
    (4, -1, (-1, 3, 2)),  # P5, what `-1` read: the head's first row now reads the new layer
    (3, 3, (-2, 5, 2)),  # P4: only input_proj.1 reads the new layer; P5 is now two rows up
    (2, 2, (-2, 3, 5)),  # P3: only input_proj.0 reads it
], ids=["P5", "P4", "P3"])
def test_insert_after_one_output_of_a_backbone(slot, new_from, reads):
    table = rows(edited(THIRD, ("insert-after", f"{slot}=nn.Identity")))
    assert table[3] == [new_from, 1, "nn.Identity", []]
    assert (table[4][0], table[8][0], table[13][0]) == reads
    assert table[-1][0] == [17, 20, 23]


@pytest.mark.parametrize("kind, value, message", [
    ("remove", "2", "has 3 outputs, so its readers cannot all be rewired"),
    ("remove", "3", "has 3 outputs"),
    ("replace", "4=nn.Identity", "has 3 output.s. and nn.Identity 1"),
    ("replace", "99=nn.Identity", "layer 99 does not exist: the base has layers 0..23"),
])
def test_edits_that_would_break_the_slots_are_refused(kind, value, message):
    with pytest.raises(YamlforgeError, match=message):
        edited(THIRD, (kind, value))


# ---------------------------------------------------------------- a K=3 backbone through gen-yaml


def test_three_output_backbone_replaces_rtdetr_l_backbone(repo, tmp_path):
    spec = backbone_spec(tmp_path / "specs", [8, 16, 32])
    mark_applied(repo, "SyntheticBackbone")
    result = gen(repo, "rtdetr-l", "SyntheticBackbone", spec_paths=(spec,))
    table = rows(result.new_text)
    assert table[0] == [-1, 1, "SyntheticBackbone", [[32, 64, 128], 8]]
    assert table[1][0] == -1 and table[5][0] == 1 and table[10][0] == 0  # P5 (slot 2), P4 (slot 1), P3 (slot 0)
    assert table[-1][0] == [14, 17, 20]
    assert "# 0-2: P3/8, P4/16, P5/32\n" in result.new_text and "# X3 (14), fpn_blocks.1" in result.new_text
    assert result.output_path.name == "rtdetr-l-SyntheticBackbone.yaml"


def test_a_backbone_after_two_layers_is_swapped_by_its_output_strides(repo, tmp_path):
    """The base's backbone is itself a 3-output row at slots 2-4 (strides 2, 4, 8 of its stride-4 input)."""
    spec = backbone_spec(tmp_path / "specs", [2, 4, 8])
    mark_applied(repo, "SyntheticBackbone", *REVCOL)
    base = tmp_path / "synthetic-third-rtdetr.yaml"
    base.write_text(THIRD)
    result = compile_yaml(GenRequest(str(base), repo=repo, dry_run=True, spec_paths=(spec,),
                                     backbone=parse_backbone("revcol_tiny")))
    table = rows(result.new_text)
    assert table[0] == REVCOL_ROW and table[1][0] == -1  # input_proj.2 read slot 4 (P5): now slot 3
    assert table[5][0] == 2 and table[10][0] == 1  # input_proj.1 read 3 (P4), input_proj.0 read 2 (P3)
    assert table[-1][0] == [15, 18, 21]
    assert "# 8 input_proj.1 (backbone P4)" in result.new_text


def test_generated_yaml_reloads_byte_for_byte_and_takes_head_edits(repo):
    mark_applied(repo, *REVCOL)
    generated = gen(repo, "rtdetr-l")
    path = repo / "ultralytics/cfg/models/rt-detr" / generated.output_path.name
    path.write_text(generated.new_text)
    assert gen(repo, str(path), None).new_text == generated.new_text  # slot numbering read back
    result = gen(repo, str(path), None, ("insert-after", "15=nn.Identity"))
    assert rows(result.new_text)[-1][0] == [16, 19, 22]
    result = gen(repo, str(path), None, ("insert-after", "2=nn.Identity"))  # the P4 output
    table = rows(result.new_text)
    assert table[1] == [2, 1, "nn.Identity", []]  # slot 4, reading P4
    assert table[2][0] == -2 and table[6][0] == 4  # input_proj.2 still reads P5; input_proj.1 the new layer


def test_backbone_combined_with_head_edits_numbered_as_in_the_base(repo):
    mark_applied(repo, *REVCOL)
    result = gen(repo, "rtdetr-l", "revcol_tiny", ("insert-after", "21=nn.Identity"))
    table = rows(result.new_text)
    assert table[13] == [-1, 1, "nn.Identity", []] and table[-1][0] == [16, 19, 22]
    assert result.output_path.name == "rtdetr-l-revcol_tiny-Identity.yaml"
    assert "  - [-1, 1, nn.Identity, []] # 16\n" in result.new_text


OFFICIAL = "[32, 64, 96, 128], [1, 2, 2, 1], 3"  # tests/fixtures/parity/revcol.pt's channels, layers, columns


@pytest.mark.parametrize("backbone", [f"revcol_custom(True, 0.0, {OFFICIAL}, 3)",
                                      "revcol_custom(channels=[32, 64, 96, 128], layers=[1, 2, 2, 1], num_columns=3)"],
                         ids=["positional", "named-with-defaults"])
def test_revcol_custom_takes_its_own_args_after_the_shared_ones(repo, backbone):
    mark_applied(repo, *REVCOL)
    result = gen(repo, "rtdetr-l", backbone)
    assert result.output_path.name == "rtdetr-l-revcol_custom.yaml"
    assert rows(result.new_text) == [[-1, 1, "revcol_custom", [True, 0.0, [32, 64, 96, 128], [1, 2, 2, 1], 3, 3]]] \
        + RTDETR_L_REVCOL_HEAD
    row = f"  - [-1, 1, revcol_custom, [True, 0.0, {OFFICIAL}, 3]] # 0-3: P2/4, P3/8, P4/16, P5/32\n"
    assert row in result.new_text


# ---------------------------------------------------------------- recipes and examples


def test_recipe_backbone_key_matches_the_cli(repo, tmp_path):
    mark_applied(repo, *REVCOL)
    recipe = tmp_path / "r.yaml"
    recipe.write_text((EXAMPLES / "yolov8s-revcol.yaml").read_text())
    assert load_recipe(recipe).backbone.module == "revcol_tiny"
    from_recipe = compile_yaml(GenRequest(None, repo=repo, recipe=recipe, dry_run=True))
    assert from_recipe.new_text == gen(repo, "yolov8s").new_text
    assert from_recipe.output_path.name == "yolov8s-revcol_tiny.yaml"


def test_rtdetr_l_revcol_example_uses_revcol_small(repo):
    mark_applied(repo, *REVCOL)
    result = compile_yaml(GenRequest(None, repo=repo, recipe=EXAMPLES / "rtdetr-l-revcol.yaml", dry_run=True))
    assert result.output_path.name == "rtdetr-l-revcol_small.yaml"
    assert rows(result.new_text) == [[-1, 1, "revcol_small", [True, 0.0]]] + RTDETR_L_REVCOL_HEAD


# ---------------------------------------------------------------- refused


def spec_16_32_64(tmp_path):
    return backbone_spec(tmp_path / "specs", [16, 32, 64])


BAD = [
    # id, base, --backbone, edits, setup, message
    ("unknown-module", "rtdetr-l", "revcol_tinyy", [], None,
     "'revcol_tinyy' is not a module yamlforge knows; --backbone takes a backbone module; did you mean revcol_tiny"),
    ("layer-module", "rtdetr-l", "SHSA", [], None, "SHSA is a layer module; --backbone takes a backbone module"),
    ("target-layer", "rtdetr-l", "Conv", [], None, "'Conv' is a layer of the target"),
    ("repeats", "rtdetr-l", "revcol_tiny*2", [], None, "a backbone is one layer; it takes no repeats"),
    ("unknown-arg", "rtdetr-l", "revcol_tiny(depth=3)", [], None, "revcol_tiny has no arg 'depth'"),
    ("export-args-of-another-export", "rtdetr-l", "revcol_tiny(True, 0.0, 5)", [], None,
     r"revcol_tiny takes 2 args \(save_memory, drop_path\), got 3"),
    ("export-arg-missing", "rtdetr-l", "revcol_custom(layers=[1, 2, 2, 1], num_columns=3)", [], None,
     "revcol_custom needs arg 'channels'"),
    ("missing-p6", "yolov8n-p6", "revcol_tiny", [], None,
     r"layer 12 reads backbone layer 11 \(SPPF\) at P6/64, but revcol_tiny has no output at that stride"),
    ("missing-p3", "rtdetr-l", "SyntheticBackbone", [], spec_16_32_64,
     r"layer 19 reads backbone layer 3 \(HGBlock\) at P3/8, but SyntheticBackbone has no output"),
    ("edit-in-replaced-backbone", "rtdetr-l", "revcol_tiny", [("insert-after", "3=nn.Identity")], None,
     "layer 3 is in the backbone that --backbone replaces"),
    ("backbone-as-layer-edit", "rtdetr-l", None, [("replace", "4=revcol_tiny")], None,
     "RevCol is a backbone module; layer edits take layer modules"),
    ("head-edit-still-stride-checked", "rtdetr-l", "revcol_tiny", [("replace", "22=nn.Identity")], None,
     "layer 22 is Conv with stride 2"),
]


@pytest.mark.parametrize("base, backbone, edits, setup, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_refused(repo, tmp_path, base, backbone, edits, setup, message):
    mark_applied(repo, "SyntheticBackbone", "SHSA", *REVCOL)
    specs = (setup(tmp_path),) if setup else ()
    with pytest.raises(YamlforgeError, match=message):
        gen(repo, base, backbone, *edits, spec_paths=specs)


def test_not_applied_names_the_apply_command(repo):
    with pytest.raises(YamlforgeError, match="module RevCol is not applied") as info:
        gen(repo, "rtdetr-l", "revcol_small")
    assert info.value.where == "--backbone revcol_small" and "--module RevCol" in info.value.hint


def test_yolov9_head_reading_the_image_side_branch_is_refused(tmp_path):
    """gelan-cb's auxiliary branch (row 26) reads Silence at layer 0, stride 1: no backbone output has it."""
    root = tmp_path / "yolov9"
    shutil.copytree(pristine_checkout("yolov9", "0.0.4"), root)
    (root / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(Manifest(target="yolov9", modules={"RevCol": AppliedModule(
        spec_digest="0", exports=REVCOL[:2], role="backbone", channels="backbone", file="revcol.py")}).to_text())
    with pytest.raises(YamlforgeError, match=r"layer 26 reads backbone layer 0 \(Silence\) at P0/1"):
        compile_yaml(GenRequest(str(FIXTURES / "yolov9-gelan-cb.yaml"), repo=root, dry_run=True,
                                backbone=parse_backbone("revcol_tiny")))


@pytest.mark.parametrize("body, message", [
    ("base: rtdetr-l\nbackbone: [revcol_tiny]\n", "recipe key 'backbone' is one module"),
    ("base: rtdetr-l\nbackbone: revcol_tiny(\n", "cannot read"),
])
def test_bad_recipe_backbone(tmp_path, body, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(body)
    with pytest.raises(YamlforgeError, match=message) as info:
        load_recipe(recipe)
    assert re.fullmatch(rf"{re.escape(str(recipe))}:2( \(.*\))?", info.value.where), info.value.where


# ---------------------------------------------------------------- CLI


def test_cli_dry_run_prints_the_swap(repo):
    mark_applied(repo, *REVCOL)
    result = CliRunner().invoke(app, ["gen-yaml", "rtdetr-l", "--backbone", "revcol_tiny", "--repo", str(repo),
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "+  - [-1, 1, revcol_tiny, [True, 0.0]] # 0-3: P2/4, P3/8, P4/16, P5/32\n" in result.output
    assert "+  - [[15, 18, 21], 1, RTDETRDecoder, [nc]] # RTDETRDecoder(P3, P4, P5)\n" in result.output
    assert "would create ultralytics/cfg/models/rt-detr/rtdetr-l-revcol_tiny.yaml" in result.output
    assert not (repo / "ultralytics/cfg/models/rt-detr/rtdetr-l-revcol_tiny.yaml").exists()


def test_cli_bad_backbone_is_one_error_line_exit_2(repo):
    result = CliRunner().invoke(app, ["gen-yaml", "rtdetr-l", "--backbone", "SHSA", "--repo", str(repo)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: SHSA is a layer module") and "Traceback" not in result.output


# ---------------------------------------------------------------- property: producers and outputs are kept


def outputs_of(module: str, args=None) -> int:
    """``B3_2`` takes 2 slots; every other name one."""
    return int(module.rpartition("_")[2]) if module.startswith("B") else 1


@st.composite
def slotted_graphs_and_edits(draw):
    """A random valid graph whose ``B<i>_<K>`` rows take K slots, and random edits by slot number."""
    size = draw(st.integers(2, 10))
    names, slots, rows_text, slot = [], [], [], 0
    for i in range(size):
        k = draw(st.sampled_from([1, 1, 2, 3]))
        name = f"B{i}_{k}" if k > 1 else f"M{i}"
        if i == 0:
            f = -1
        else:
            picks = sorted(set(draw(st.lists(st.integers(0, slot - 1), min_size=1, max_size=3))))
            entries = [p - slot if draw(st.booleans()) else p for p in picks]
            f = entries[0] if len(entries) == 1 and draw(st.booleans()) else entries
        names.append(name)
        slots.append(slot)
        rows_text.append(f"[{f}, 1, {name}, []]")
        slot += k
    split = draw(st.integers(1, size))
    body = "".join(f"  - {r} # {s}\n" for s, r in zip(slots[:split], rows_text[:split]))
    head = "".join(f"  - {r} # {s}\n" for s, r in zip(slots[split:], rows_text[split:])) or "  []\n"
    edits = []
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "insert-after", "insert-before", "remove"]))
        at = draw(st.integers(0, slot - 1))
        edits.append((kind, str(at) if kind == "remove" else f"{at}={'R' if kind == 'replace' else 'X'}{k}"))
    return f"nc: 1\nbackbone:\n{body}\nhead:\n{head}", edits


def slot_producers(rows_) -> dict[str, list[tuple[str, int]]]:
    """module -> the (module, output) pairs it reads, through the slot numbering."""
    owner, slot = {}, 0
    for _, _, m, _ in rows_:
        for k in range(outputs_of(m)):
            owner[slot + k] = (m, k)
        slot += outputs_of(m)
    out, slot = {}, 0
    for i, (f, _, m, _) in enumerate(rows_):
        out[m] = [("input", 0) if i == 0 and e == -1 else owner[slot + e if e < 0 else e]
                  for e in (f if isinstance(f, list) else [f])]
        slot += outputs_of(m)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slotted_graphs_and_edits())
def test_edits_keep_every_layer_wired_to_the_same_outputs(case):
    text, edits = case
    base = YAML(typ="safe").load(text)
    base_rows = base["backbone"] + (base["head"] or [])
    layout = ModelLayout(text)
    graph = layout.graph(outputs_of)
    try:
        for kind, value in edits:
            edit = parse_edit(kind, value)
            if kind == "remove":
                graph.remove(edit.layer, edit.option)
            else:
                getattr(graph, kind.replace("-", "_"))(edit.layer, edit.module, [], "[]", 1, edit.option)
        out_text = layout.render(graph).text
    except YamlforgeError:
        return  # refused edits have their own tests
    out = YAML(typ="safe").load(out_text)
    out_rows = out["backbone"] + (out["head"] or [])
    out_layout = ModelLayout(out_text)
    assert out_layout.render(out_layout.graph(outputs_of)).text == out_text  # the output parses with its own slots
    base_of = {r[2]: r[2] for r in base_rows}
    for kind, value in edits:
        if kind == "replace":
            slot, name = value.split("=")
            base_of[name] = graph.base[graph.slot_owner[int(slot)][0]].module
    removed = {graph.base[graph.slot_owner[int(v)][0]].module for k, v in edits if k == "remove"}
    got, want = slot_producers(out_rows), slot_producers(base_rows)

    def through_inserted(read):  # an inserted layer passes on what it reads
        while read[0].startswith("X"):
            (read,) = got[read[0]]
        return base_of.get(read[0], read[0]), read[1]

    def through_removed(read):  # a removed layer's readers read its input
        while read[0] in removed:
            (read,) = want[read[0]]
        return read

    kept = [m for m in got if not m.startswith("X")]
    assert sorted(base_of[m] for m in kept) == sorted(set(want) - removed)
    for m in kept:
        assert [through_inserted(r) for r in got[m]] == [through_removed(r) for r in want[base_of[m]]], out_text
