"""YAML loading: libyaml's parser gives the same data and positions as ruamel's own, and errors name the line."""

from __future__ import annotations

import pytest
import ruamel.yaml.main
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, SequenceNode

from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.load import entry, line_of, load_nodes
from yamlforge.scratch import pristine_checkout

MODELS = pristine_checkout("ultralytics", "8.4.190") / "ultralytics/cfg/models"
MODEL_FILES = sorted(MODELS.rglob("*.yaml"))
# YOLOv9 style: one flow list per section, comments and blank lines inside it, non-ASCII before a row
FLOW = """\
nc: 80  # classes, 类别
backbone:
  [
   [-1, 1, Silence, []],  # 0

   [-1, 1, Conv, [64, 3, 2]], [-1, 1, Conv, ['é', 3, 2]],  # 1-P1/2, 2
  ]
head: [[-1, 1, DDetect, [nc]]]
"""


def positions(node):
    """Every node's (start, end) line and column, depth first."""
    out = [(node.start_mark.line, node.start_mark.column, node.end_mark.line, node.end_mark.column)]
    if isinstance(node, SequenceNode):
        for child in node.value:
            out += positions(child)
    elif isinstance(node, MappingNode):
        for key, value in node.value:
            out += positions(key) + positions(value)
    return out


def test_libyaml_parser_is_the_one_used():
    # ruamel.yaml.clib is a dependency: without it every load takes the pure-Python parser, about 10x slower
    assert ruamel.yaml.main.CParser is not None


@pytest.mark.parametrize("path", [*MODEL_FILES, None], ids=[p.relative_to(MODELS).as_posix() for p in MODEL_FILES]
                         + ["yolov9-flow-style"])
def test_same_data_and_positions_as_the_pure_python_parser(path):
    text = path.read_text(encoding="utf-8") if path else FLOW
    data, node = load_nodes(text, where="model.yaml", what="model YAML")
    pure = YAML(typ="safe", pure=True)
    pure_node = pure.compose(text)
    assert data == pure.constructor.construct_document(pure_node)
    assert positions(node) == positions(pure_node)


def test_entry_and_line_of():
    _, node = load_nodes(FLOW, where="m.yaml", what="model YAML")
    key, value = entry(node, "head")
    assert (key.value, value.flow_style) == ("head", True)
    assert entry(node, "scales") is None and entry(value, "head") is None  # no key; not a mapping
    assert (line_of(node, "backbone"), line_of(node, "nc"), line_of(node, "missing"), line_of(None)) == (3, 1, 1, 1)


@pytest.mark.parametrize("text, line", [
    ("backbone: [\n", 2),
    ("nc: 1\nhead:\n  - [-1, 1, Conv, [1]\n  - x\n", 4),
    ("a: 1\na: 2\n", 2),  # duplicate key
    ("a: *nowhere\n", 1),
])
def test_malformed_yaml_is_one_error_naming_the_line(text, line):
    with pytest.raises(YamlforgeError, match=rf"^malformed model YAML: .+ \(m\.yaml:{line}\)$"):
        load_nodes(text, where="m.yaml", what="model YAML")
