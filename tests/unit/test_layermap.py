"""The old -> new layer map (no torch): gen-yaml's record for every kind of edit agrees with the structural alignment
and with the carried/new/replaced counts the edit implies; hand-edited YAMLs are aligned, not mis-mapped; the record
reads back and a stale one is noticed; freeze values."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML
from test_genyaml import mark_applied

from yamlforge.modelyaml.compile import GenRequest, compile_yaml
from yamlforge.modelyaml.edits import parse_backbone, parse_edit, parse_replace_all
from yamlforge.modelyaml.layermap import RECORD
from yamlforge.runners.yf_layermap import LayerMap, align, layer_map, yaml_rows


def rows_of(text: str) -> list[list]:
    return yaml_rows(YAML(typ="safe").load(text))


def gen(repo, *edits, replace_all=(), backbone=None, base="yolov8n"):
    request = GenRequest(base, [parse_edit(op, value) for op, value in edits], repo=repo, dry_run=True,
                         replace_all=[parse_replace_all(v) for v in replace_all],
                         backbone=parse_backbone(backbone) if backbone else None)
    return compile_yaml(request)


# (id, edits, --replace-all, --backbone, base, carried, new, replaced, removed, a pair the map must hold)
EDITS = [
    ("insert-after", [("insert-after", "4=nn.Identity")], (), None, "yolov8n", 23, 1, 0, 0, (5, 6)),
    ("insert-before", [("insert-before", "6=nn.Identity")], (), None, "yolov8n", 23, 1, 0, 0, (6, 7)),
    ("two-inserts-same-place", [("insert-after", "4=nn.Identity"), ("insert-after", "4=nn.Identity")], (), None,
     "yolov8n", 23, 2, 0, 0, (22, 24)),
    ("replace", [("replace", "4=C3(64)")], (), None, "yolov8n", 22, 0, 1, 0, (4, 4)),
    ("remove", [("remove", "9")], (), None, "yolov8n", 22, 0, 0, 1, (10, 9)),
    ("insert-and-remove", [("insert-after", "2=nn.Identity"), ("remove", "9")], (), None, "yolov8n", 22, 1, 0, 1,
     (10, 10)),
    ("replace-all", [], ("C2f=C3",), None, "yolov8n", 15, 0, 8, 0, (9, 9)),
    ("backbone", [], (), "revcol_tiny", "rtdetr-l", 19, 1, 0, 10, (10, 1)),
]


@pytest.mark.parametrize("edits,replace_all,backbone,base,carried,new,replaced,removed,pair",
                         [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_recorded_map_agrees_with_alignment_and_the_edit(genyaml_repo, edits, replace_all, backbone, base, carried,
                                                         new, replaced, removed, pair):
    if backbone:
        mark_applied(genyaml_repo, "revcol_tiny", "revcol_small", "RevCol")
    result = gen(genyaml_repo, *edits, replace_all=replace_all, backbone=backbone, base=base)
    recorded = LayerMap.from_record(result.new_text)
    assert recorded is not None and RECORD.search(result.new_text.splitlines()[1])
    base_rows, new_rows = rows_of(result.old_text), rows_of(result.new_text)
    assert recorded.misfit(base_rows, new_rows) is None
    assert (len(recorded.carried), len(recorded.new), len(recorded.replaced), len(recorded.removed)) == \
        (carried, new, replaced, removed)
    assert recorded.carried.get(pair[0], recorded.replaced.get(pair[0])) == pair[1]
    aligned = align(base_rows, new_rows)
    assert (aligned.carried, aligned.replaced) == (recorded.carried, recorded.replaced)


def test_an_unedited_copy_records_no_map_and_aligns_to_itself(genyaml_repo):
    result = gen(genyaml_repo)
    assert LayerMap.from_record(result.new_text) is None
    rows = rows_of(result.new_text)
    assert align(rows, rows).is_identity


SWAP_BASE = [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [32, 3, 2]], [-1, 1, "C2f", [32]],
             [-1, 1, "SPPF", [32, 5]], [1, 1, "Conv", [64, 1, 1]], [[-1, 3], 1, "Concat", [1]],
             [-1, 1, "C2f", [64]]]
# rows 3 and 4 swapped by hand: both read row 1 / row 2 as before, the Concat reads them at their new places
SWAP_NEW = [SWAP_BASE[0], SWAP_BASE[1], SWAP_BASE[2], [1, 1, "Conv", [64, 1, 1]], [2, 1, "SPPF", [32, 5]],
            [[-2, 4], 1, "Concat", [1]], SWAP_BASE[6]]


# (id, base rows, new rows, carried, replaced)
ALIGN = [
    ("identity", SWAP_BASE, SWAP_BASE, {i: i for i in range(7)}, {}),
    ("hand-swap", SWAP_BASE, SWAP_NEW, {0: 0, 1: 1, 2: 2, 3: 4, 4: 3, 5: 5, 6: 6}, {}),
    ("equal-row-inserted-after-its-twin", SWAP_BASE[:3], [*SWAP_BASE[:3], [-1, 1, "C2f", [32]]],
     {0: 0, 1: 1, 2: 2}, {}),
    # ambiguous without a record: both C2f rows could be the base's; the one reading what it read wins (gen-yaml's
    # record, checked in test_recorded_map_agrees_with_alignment_and_the_edit[insert-before], says which it was)
    ("equal-row-inserted-before-its-twin", SWAP_BASE[:3], [*SWAP_BASE[:2], [-1, 1, "C2f", [32]], SWAP_BASE[2]],
     {0: 0, 1: 1, 2: 2}, {}),
    ("args-changed-is-replaced", SWAP_BASE[:3], [SWAP_BASE[0], [-1, 1, "Conv", [48, 3, 2]], SWAP_BASE[2]],
     {0: 0, 2: 2}, {1: 1}),
    ("repeats-changed-is-replaced", SWAP_BASE[:3], [*SWAP_BASE[:2], [-1, 2, "C2f", [32]]], {0: 0, 1: 1}, {2: 2}),
    ("another-model-carries-nothing", SWAP_BASE[:3], [[-1, 1, "HGStem", [32, 48]], [-1, 6, "HGBlock", [48, 128, 3]]],
     {}, {}),
]


@pytest.mark.parametrize("base,new,carried,replaced", [a[1:] for a in ALIGN], ids=[a[0] for a in ALIGN])
def test_align(base, new, carried, replaced):
    aligned = align(base, new)
    assert (aligned.carried, aligned.replaced) == (carried, replaced)


def test_equal_row_inserted_after_its_twin_keeps_the_original_in_place():
    """The inserted twin reads the original; the original reads what it read in the base: inputs break the tie."""
    aligned = align(SWAP_BASE[:3], [*SWAP_BASE[:3], [-1, 1, "C2f", [32]]])
    assert aligned.new == [3]


RECORDS = [
    ("carried-and-replaced", LayerMap(6, 7, {0: 0, 1: 1, 2: 3, 4: 5, 5: 6}, {3: 4})),
    ("removed", LayerMap(4, 3, {0: 0, 2: 1, 3: 2})),
    ("nothing-carried", LayerMap(2, 1, {}, {0: 0})),
]


@pytest.mark.parametrize("mapping", [r[1] for r in RECORDS], ids=[r[0] for r in RECORDS])
def test_record_reads_back(mapping):
    text = f"# yamlforge: gen-yaml base=x.yaml\n{mapping.to_record()}\nnc: 80\n"
    assert LayerMap.from_record(text) == mapping


def test_record_is_short_ranges():
    assert LayerMap(23, 24, {**{i: i for i in range(5)}, **{i: i + 1 for i in range(5, 23)}}).to_record() == \
        "# yamlforge: layers 0-4>0-4 5-22>6-23 rows=23>24"


@pytest.mark.parametrize("text", ["# yamlforge: layers 0-4>0-9 rows=5>10\n", "# yamlforge: layers 0>0 rows=x\n",
                                  "# yamlforge: layers 0>0\n", "nc: 80\n"], ids=["uneven-range", "bad-rows",
                                                                                 "no-rows", "none"])
def test_unreadable_or_missing_record_is_none(text):
    assert LayerMap.from_record(text) is None


def test_a_stale_record_is_reported_and_the_rows_aligned():
    text = "# yamlforge: gen-yaml base=x.yaml\n# yamlforge: layers 0-6>0-6 rows=7>7\n"
    mapping, why = layer_map(SWAP_BASE, SWAP_NEW, text)
    assert why is not None and "no longer fits" in why and "base row 3" in why
    assert mapping.carried[3] == 4 and mapping.carried[4] == 3
    assert layer_map(SWAP_BASE, SWAP_BASE[:6], text)[1].startswith("the layer map gen-yaml recorded no longer fits "
                                                                   "(it records 7 -> 7 rows, the files have 7 -> 6)")


# (id, map, base rows frozen, value)
FREEZE = [
    ("unchanged-prefix", LayerMap(12, 13, {i: i if i < 11 else i + 1 for i in range(12)}), 10, 10),
    ("insert-inside", LayerMap(12, 13, {i: i if i < 5 else i + 1 for i in range(12)}), 10, [0, 1, 2, 3, 4, 6, 7, 8,
                                                                                          9, 10]),
    ("removed-inside", LayerMap(12, 11, {i: i if i < 5 else i - 1 for i in range(12) if i != 5}), 10, 9),
    ("replaced-first", LayerMap(3, 3, {1: 1, 2: 2}, {0: 0}), 2, [1]),
]


@pytest.mark.parametrize("mapping,count,value", [f[1:] for f in FREEZE], ids=[f[0] for f in FREEZE])
def test_freeze_value_freezes_the_same_base_layers(mapping, count, value):
    assert mapping.freeze(count) == value
