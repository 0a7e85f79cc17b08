"""The model YAML graph: edits by base numbers, renumbering, comments and layout kept, strides of built-in layers."""

from __future__ import annotations

import textwrap
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.edits import parse_edit
from yamlforge.modelyaml.graph import output_strides
from yamlforge.modelyaml.layout import ModelLayout
from yamlforge.modelyaml.strides import builtin_factor, stride_label


def d(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def apply_edits(text: str, *edits: tuple[str, str]) -> str:
    """Apply ``(kind, value)`` edits the way gen-yaml does, args taken verbatim (no specs involved)."""
    layout = ModelLayout(text)
    graph = layout.graph()
    for kind, value in edits:
        edit = parse_edit(kind, value)
        if kind == "remove":
            graph.remove(edit.layer, edit.option)
            continue
        args_text = "[" + ", ".join(t for _, t in edit.args) + "]"
        args = YAML(typ="safe").load(args_text)
        getattr(graph, kind.replace("-", "_"))(edit.layer, edit.module, args, args_text, edit.repeats or 1,
                                                edit.option)
    return layout.render(graph).text


V8 = d("""
    # Parameters
    nc: 80 # number of classes

    backbone:
      # [from, repeats, module, args]
      - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
      - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
      - [-1, 3, C2f, [128, True]]
      - [-1, 1, Conv, [256, 3, 2]] # 3-P3/8

    head:
      - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
      - [[-1, 2], 1, Concat, [1]] # cat backbone P2
      - [-1, 3, C2f, [256]] # 6 (P3/8-small)

      - [[3, 6], 1, Detect, [nc]] # Detect(P3, P4)
    """)

# A YOLOv9 file: each section one flow list, with comments and blank lines inside it.
V9 = d("""
    # YOLOv9
    nc: 80  # number of classes
    depth_multiple: 1.0  # model depth multiple

    backbone:
      [
       # conv down
       [-1, 1, Conv, [64, 3, 2]],  # 0-P1/2

       # elan-1 block
       [-1, 1, RepNCSPELAN4, [256, 128, 64, 1]],  # 1

       # avg-conv down
       [-1, 1, ADown, [256]],  # 2-P3/8
      ]

    head:
      [[-1, 1, SPPELAN, [512, 256]],  # 3

       # up-concat merge
       [-1, 1, nn.Upsample, [None, 2, 'nearest']],
       [[-1, 1], 1, Concat, [1]],  # cat backbone

       [[3, 5], 1, DDetect, [nc]],  # DDetect(P3, P4)
      ]
    """)

CASES = [
    # id, base, edits, expected
    ("noop-block", V8, [], V8),
    ("noop-flow", V9, [], V9),
    ("replace-same-text-is-noop", V8, [("replace", "2=C2f(128, True)*3")], V8),
    ("replace-block", V8, [("replace", "layer2=nn.Identity")],
     V8.replace("[-1, 3, C2f, [128, True]]", "[-1, 1, nn.Identity, []]")),
    ("replace-keeps-repeats-given", V8, [("replace", "2=C3(64)*2")],
     V8.replace("[-1, 3, C2f, [128, True]]", "[-1, 2, C3, [64]]")),
    ("insert-after-rewires-all-consumers", V8, [("insert-after", "2=nn.Identity")], d("""
        # Parameters
        nc: 80 # number of classes

        backbone:
          # [from, repeats, module, args]
          - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
          - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
          - [-1, 3, C2f, [128, True]]
          - [-1, 1, nn.Identity, []] # 3
          - [-1, 1, Conv, [256, 3, 2]] # 4-P3/8

        head:
          - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
          - [[-1, 3], 1, Concat, [1]] # cat backbone P2
          - [-1, 3, C2f, [256]] # 7 (P3/8-small)

          - [[4, 7], 1, Detect, [nc]] # Detect(P3, P4)
        """)),
    ("insert-before-takes-the-input", V8, [("insert-before", "3=nn.Identity")], d("""
        # Parameters
        nc: 80 # number of classes

        backbone:
          # [from, repeats, module, args]
          - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
          - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
          - [-1, 3, C2f, [128, True]]
          - [-1, 1, nn.Identity, []] # 3
          - [-1, 1, Conv, [256, 3, 2]] # 4-P3/8

        head:
          - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
          - [[-1, 2], 1, Concat, [1]] # cat backbone P2
          - [-1, 3, C2f, [256]] # 7 (P3/8-small)

          - [[4, 7], 1, Detect, [nc]] # Detect(P3, P4)
        """)),
    ("remove-rewires-to-input", V8, [("remove", "2")], d("""
        # Parameters
        nc: 80 # number of classes

        backbone:
          # [from, repeats, module, args]
          - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
          - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
          - [-1, 1, Conv, [256, 3, 2]] # 2-P3/8

        head:
          - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
          - [[-1, 1], 1, Concat, [1]] # cat backbone P2
          - [-1, 3, C2f, [256]] # 5 (P3/8-small)

          - [[2, 5], 1, Detect, [nc]] # Detect(P3, P4)
        """)),
    ("relative-offset-follows-its-producer", V8, [("insert-after", "4=nn.Identity")],
     # layer 5's `-1` read layer 4, which is now read through the new layer 5: `-1` stays right
     V8.replace('  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]\n',
                '  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]\n  - [-1, 1, nn.Identity, []] # 5\n')
       .replace("# 6 (P3/8-small)", "# 7 (P3/8-small)").replace("[[3, 6], 1, Detect", "[[3, 7], 1, Detect")),
    ("edit-order-does-not-matter", V8, [("insert-after", "5=nn.Identity"), ("insert-after", "1=nn.Identity")],
     apply_edits(V8, ("insert-after", "1=nn.Identity"), ("insert-after", "5=nn.Identity"))),
    ("flow-insert-after", V9, [("insert-after", "1=nn.Identity")], d("""
        # YOLOv9
        nc: 80  # number of classes
        depth_multiple: 1.0  # model depth multiple

        backbone:
          [
           # conv down
           [-1, 1, Conv, [64, 3, 2]],  # 0-P1/2

           # elan-1 block
           [-1, 1, RepNCSPELAN4, [256, 128, 64, 1]],  # 1
           [-1, 1, nn.Identity, []],  # 2

           # avg-conv down
           [-1, 1, ADown, [256]],  # 3-P3/8
          ]

        head:
          [[-1, 1, SPPELAN, [512, 256]],  # 4

           # up-concat merge
           [-1, 1, nn.Upsample, [None, 2, 'nearest']],
           [[-1, 2], 1, Concat, [1]],  # cat backbone

           [[4, 6], 1, DDetect, [nc]],  # DDetect(P3, P4)
          ]
        """)),
    ("flow-insert-before-first-row-moves-the-bracket", V9, [("insert-before", "3=nn.Identity")], d("""
        # YOLOv9
        nc: 80  # number of classes
        depth_multiple: 1.0  # model depth multiple

        backbone:
          [
           # conv down
           [-1, 1, Conv, [64, 3, 2]],  # 0-P1/2

           # elan-1 block
           [-1, 1, RepNCSPELAN4, [256, 128, 64, 1]],  # 1

           # avg-conv down
           [-1, 1, ADown, [256]],  # 2-P3/8
          ]

        head:
          [[-1, 1, nn.Identity, []],  # 3
           [-1, 1, SPPELAN, [512, 256]],  # 4

           # up-concat merge
           [-1, 1, nn.Upsample, [None, 2, 'nearest']],
           [[-1, 1], 1, Concat, [1]],  # cat backbone

           [[4, 6], 1, DDetect, [nc]],  # DDetect(P3, P4)
          ]
        """)),
    ("flow-replace-keeps-quotes-and-comments", V9, [("replace", "4=nn.Upsample(None, 2, 'bilinear')")],
     V9.replace("'nearest'", "'bilinear'")),
    ("flow-remove-first-row-keeps-the-bracket", V9, [("remove", "3")], d("""
        # YOLOv9
        nc: 80  # number of classes
        depth_multiple: 1.0  # model depth multiple

        backbone:
          [
           # conv down
           [-1, 1, Conv, [64, 3, 2]],  # 0-P1/2

           # elan-1 block
           [-1, 1, RepNCSPELAN4, [256, 128, 64, 1]],  # 1

           # avg-conv down
           [-1, 1, ADown, [256]],  # 2-P3/8
          ]

        head:
          [

           # up-concat merge
           [-1, 1, nn.Upsample, [None, 2, 'nearest']],
           [[-1, 1], 1, Concat, [1]],  # cat backbone

           [[2, 4], 1, DDetect, [nc]],  # DDetect(P3, P4)
          ]
        """)),
    ("chained-insert-after-same-layer", V8, [("insert-after", "6=nn.Identity"), ("insert-after", "6=nn.Dropout")],
     V8.replace("  - [-1, 3, C2f, [256]] # 6 (P3/8-small)\n",
                "  - [-1, 3, C2f, [256]] # 6 (P3/8-small)\n  - [-1, 1, nn.Identity, []] # 7\n"
                "  - [-1, 1, nn.Dropout, []] # 8\n").replace("[[3, 6], 1, Detect", "[[3, 8], 1, Detect")),
]


@pytest.mark.parametrize("base, edits, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_edit_table(base, edits, expected):
    assert apply_edits(base, *edits) == expected


def test_insert_before_a_minus_one_in_n_points_to_the_new_layer():
    out = YAML(typ="safe").load(apply_edits(V8, ("insert-before", "2=nn.Identity")))
    rows = out["backbone"] + out["head"]
    assert rows[2][2] == "nn.Identity" and rows[2][0] == -1  # reads layer 1
    assert rows[3][2] == "C2f" and rows[3][0] == -1  # reads the new layer
    assert rows[6][0] == [-1, 3]  # the Concat still reads the C2f


def test_relative_index_is_recomputed_when_its_producer_moves_away():
    base = d("""
        backbone:
          - [-1, 1, Conv, [64, 3, 2]]
          - [-1, 1, Conv, [64, 3, 1]]
          - [0, 1, Conv, [64, 3, 1]]
        head:
          - [[-2, -1], 1, Concat, [1]]
        """)
    # inserting after 2 puts a layer between the Concat and layer 1: its -2 must become -3
    assert "- [[-3, -1], 1, Concat, [1]]" in apply_edits(base, ("insert-after", "2=nn.Identity"))


@pytest.mark.parametrize("base, kind, value, message", [
    (V8, "remove", "5", "reads 2 layers"),
    (V8, "insert-before", "7=nn.Identity", "reads 2 layers"),
    (V8, "replace", "9=nn.Identity", "layer 9 does not exist"),
    ("backbone:\n  - [-1, 1, Conv, [8]]\n  - [-1, 1, Conv, [8]]\n  - [0, 1, Conv, [8]]\nhead: []\n",
     "remove", "0", "only layer 0 can"),
], ids=["remove-concat", "insert-before-detect", "out-of-range", "remove-first-layer-read-twice"])
def test_refused_edits(base, kind, value, message):
    with pytest.raises(YamlforgeError, match=message):
        apply_edits(base, (kind, value))


def test_edit_of_a_removed_layer_is_refused():
    with pytest.raises(YamlforgeError, match="removed by another edit"):
        apply_edits(V8, ("remove", "2"), ("replace", "2=nn.Identity"))


@pytest.mark.parametrize("text, message", [
    ("backbone:\n  - [1, 1, Conv, [64]]\nhead:\n  - [-1, 1, Detect, [nc]]\n", "points to a later layer"),
    ("backbone:\n  - [-3, 1, Conv, [64]]\nhead:\n  - [-1, 1, Detect, [nc]]\n", "points before the first layer"),
    ("backbone:\n  - [-1, 1, Conv]\nhead: []\n", "not a .from, repeats, module, args. row"),
    ("backbone: {}\nhead: []\n", "needs 'backbone' and 'head' lists"),
    ("backbone: [\n", "malformed model YAML"),
])
def test_bad_base_files(text, message):
    with pytest.raises(YamlforgeError, match=message):
        ModelLayout(text, "m.yaml").graph()


def test_row_spans_nested_quoted_and_commented():
    text = "backbone:\n  - [-1, 1, Conv, [64]]\nhead:\n  - [[-1, 0], 1, nn.Upsample, [None, 2, 'a,]b'],  # c, ]\n  ]\n"
    span = ModelLayout(text).rows[1].span
    assert [text[c.start:c.end] for c in span.children] == ["[-1, 0]", "1", "nn.Upsample", "[None, 2, 'a,]b']"]
    assert [text[c.start:c.end] for c in span.children[0].children] == ["-1", "0"]
    assert text[span.start:span.end].endswith("# c, ]\n  ]") and text[span.start] == "["


ALIASED = d("""
    backbone:
      - &stem [-1, 1, Conv, &wide [64, 3, 2]]
      - [-1, 1, Conv, *wide]
      - *stem
    head:
      - [-1, 1, nn.Identity, []]
    """)


def test_rows_holding_an_alias_are_not_rewritten_in_place():
    assert [row is not None for row in ModelLayout(ALIASED).rows] == [True, False, False, True]
    assert apply_edits(ALIASED, ("insert-after", "0=nn.Identity")) == ALIASED.replace(
        "  - [-1, 1, Conv, *wide]\n", "  - [-1, 1, nn.Identity, []] # 1\n  - [-1, 1, Conv, *wide]\n")
    with pytest.raises(YamlforgeError, match="layer 2 is not written as a one-line .* no row can be placed after it"):
        apply_edits(ALIASED, ("insert-after", "2=nn.Identity"))
    with pytest.raises(YamlforgeError, match="layer 1 is not written as a one-line"):
        apply_edits(ALIASED, ("replace", "1=nn.Identity"))
    with pytest.raises(YamlforgeError, match="layer 2 is not written as a one-line"):
        apply_edits(ALIASED, ("replace", "2=nn.Identity"))


@pytest.mark.parametrize("module, args, factor", [
    ("Conv", [64, 3, 2], Fraction(2)),
    ("Conv", [64, 3], Fraction(1)),
    ("Conv", [256, 1, 1, None, 1, 1, False], Fraction(1)),
    ("DWConv", [512, 3, 2, 1, False], Fraction(2)),
    ("GhostConv", [1024, 3, 2], Fraction(2)),
    ("SCDown", [512, 3, 2], Fraction(2)),
    ("ADown", [256], Fraction(2)),
    ("AConv", [96], Fraction(2)),
    ("HGStem", [32, 48], Fraction(4)),
    ("ResNetLayer", [3, 64, 1, True, 1], Fraction(4)),
    ("ResNetLayer", [256, 128, 2, False, 4], Fraction(2)),
    ("nn.Upsample", [None, 2, "nearest"], Fraction(1, 2)),
    ("nn.MaxPool2d", [3, 2, 1], Fraction(2)),
    ("nn.MaxPool2d", [2], Fraction(2)),
    ("C2f", [128, True], Fraction(1)),
    ("Concat", [1], Fraction(1)),
    ("TorchVision", [512, "resnet18"], None),
    ("Conv", [64, 3, "s"], None),
])
def test_builtin_factor(module, args, factor):
    assert builtin_factor(module, args) == factor


def test_stride_labels():
    assert [stride_label(Fraction(s)) for s in (4, 8, 32)] == ["P2/4", "P3/8", "P5/32"]
    assert [stride_label(s) for s in (16, 6, Fraction(1, 2))] == ["P4/16", "6", "1/2"]
    assert stride_label(None) == "?"


FUSED = d("""
    backbone:
      - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
      - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
    head:
      - [[1, 0], 1, CBFuse, [[0]]] # 2
    """)


@pytest.mark.parametrize("from_last_input, stride", [(frozenset(), 4), (frozenset({"CBFuse"}), 2)])
def test_stride_follows_the_last_input_only_for_the_targets_named_modules(from_last_input, stride):
    graph = ModelLayout(FUSED).graph()
    strides = output_strides(graph.base, lambda layer: builtin_factor(layer.module, layer.args), from_last_input)
    assert strides[2, 0] == stride


# ---------------------------------------------------------------- property: producers are kept


@st.composite
def graphs_and_edits(draw):
    """A random valid graph (block or flow style) and random edits, written with unique module names."""
    size = draw(st.integers(2, 12))
    rows = []
    for i in range(size):
        if i == 0:
            f = -1
        else:
            k = draw(st.integers(1, min(3, i)))
            picks = sorted(set(draw(st.lists(st.integers(0, i - 1), min_size=k, max_size=k))))
            forms = [draw(st.booleans()) for _ in picks]  # relative or absolute
            entries = [p - i if rel else p for p, rel in zip(picks, forms)]
            f = entries[0] if len(entries) == 1 and draw(st.booleans()) else entries
        rows.append(f"[{f}, 1, M{i}, []]".replace("'", ""))
    split = draw(st.integers(1, size))
    flow = draw(st.booleans())

    def section(items):
        if flow:
            return "  [\n" + "".join(f"   {r},  # {n}\n" for n, r in items) + "  ]\n"
        return "".join(f"  - {r} # {n}\n" for n, r in items) if items else "  []\n"

    numbered = list(enumerate(rows))
    text = "nc: 1\nbackbone:\n" + section(numbered[:split]) + "\nhead:\n" + section(numbered[split:])
    if not flow and split == size:
        text = text.replace("head:\n  []\n", "head: []\n")
    edits = []
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "insert-after", "insert-before", "remove"]))
        layer = draw(st.integers(0, size - 1))
        edits.append((kind, str(layer) if kind == "remove" else f"{layer}={'R' if kind == 'replace' else 'X'}{k}"))
    return text, edits


def producers(rows) -> dict[str, list[str]]:
    """module name -> module names it reads (``input`` for the image)."""
    names = [r[2] for r in rows]
    out = {}
    for i, (f, _, m, _) in enumerate(rows):
        out[m] = [("input" if i == 0 and e == -1 else names[i + e if e < 0 else e]) for e in (f if isinstance(f, list)
                                                                                               else [f])]
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs_and_edits())
def test_edits_keep_every_layer_wired_to_the_same_logical_producers(case):
    text, edits = case
    base = YAML(typ="safe").load(text)
    base_rows = base["backbone"] + (base["head"] or [])
    try:
        out_text = apply_edits(text, *edits)
    except YamlforgeError:
        return  # refused edits (several inputs, removed twice, ...) are covered by their own tests
    out = YAML(typ="safe").load(out_text)
    out_rows = out["backbone"] + (out["head"] or [])
    base_of = {f"M{i}": f"M{i}" for i in range(len(base_rows))}
    removed = {f"M{v}" for k, v in edits if k == "remove"}
    for kind, value in edits:
        if kind == "replace":
            n, name = value.split("=")
            base_of[name] = f"M{n}"
    got, want = producers(out_rows), producers(base_rows)

    def through_inserted(name):  # an inserted layer passes on what it reads
        while name.startswith("X"):
            (name,) = got[name]
        return base_of.get(name, name)

    def through_removed(name):  # a removed layer's readers read its input
        while name in removed:
            (name,) = want[name]
        return name

    kept = [m for m in got if not m.startswith("X")]
    assert sorted(base_of[m] for m in kept) == sorted(set(want) - removed)
    for m in kept:
        assert [through_inserted(p) for p in got[m]] == [through_removed(p) for p in want[base_of[m]]], out_text
