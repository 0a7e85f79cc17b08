"""What a drawn model must show, shared by the graph and scenario tests: read from what Graphviz made of the DOT.

Nodes and edges come from the SVG, output ports from Graphviz's JSON layout of the DOT (an SVG edge title names no
port), fills from the SVG; what they are compared with is computed from the written YAML and gen-yaml's own rows.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ruamel.yaml import YAML

from yamlforge.check.draw import STATUS_COLORS, layout, render

SLOTS = {"revcol_small": 4, "revcol_tiny": 4}  # RevCol's four outputs take four index slots
SVG = "{http://www.w3.org/2000/svg}"
# gen-yaml's row status -> the highlight graph draws (a swapped-in backbone is a new row)
HIGHLIGHT = {"backbone": "new", "new": "new", "replaced": "replaced", "rewired": "rewired"}


def model_rows(path: Path) -> list[list]:
    data = YAML(typ="safe").load(path.read_text())
    return data["backbone"] + data["head"]


def slot_numbers(rows: list[list]) -> list[int]:
    slots, slot = [], 0
    for row in rows:
        slots.append(slot)
        slot += SLOTS.get(row[2], 1)
    return slots


def expected_edges(rows: list[list]) -> set[tuple[str, int, str]]:
    """Each ``from`` entry as (producer node, its output, reader node), read from the YAML rows alone."""
    slots = slot_numbers(rows)
    owner = {slots[i] + k: (slots[i], k) for i, row in enumerate(rows) for k in range(SLOTS.get(row[2], 1))}
    edges = set()
    for i, row in enumerate(rows):
        for entry in row[0] if isinstance(row[0], list) else [row[0]]:
            if i == 0:
                edges.add(("input", 0, "n0"))
                continue
            first, k = owner[slots[i] + entry if entry < 0 else entry]
            edges.add((f"n{first}", k, f"n{slots[i]}"))
    return edges


def changed_rows(rows) -> dict[str, str]:
    """gen-yaml's table rows (``GenResult.rows``) that graph highlights: node -> highlight."""
    return {f"n{r.index.split('-')[0]}": HIGHLIGHT[r.status] for r in rows if r.status in HIGHLIGHT}


def laid_out(dot: str) -> dict:
    """The DOT as Graphviz reads it: ``json0`` (objects = clusters then nodes, edges with tail/head ids)."""
    return json.loads(layout(dot, "json0"))


def nodes_of(doc: dict) -> dict[str, dict]:
    """The model's nodes (the legend's, drawn when the model has a base, left out)."""
    return {o["name"]: o for o in doc["objects"] if "nodes" not in o and not o["name"].startswith("legend_")}


def edges_of(doc: dict) -> set[tuple[str, int, str]]:
    """(producer node, output port, consumer node) of every edge."""
    names = {o["_gvid"]: o["name"] for o in doc["objects"] if "_gvid" in o and "nodes" not in o}
    return {(names[e["tail"]], int(e.get("tailport", "o0:s").split(":")[0][1:]), names[e["head"]])
            for e in doc.get("edges", ()) if not names[e["tail"]].startswith("legend_")}


def label(node: dict) -> ET.Element:
    return ET.fromstring(re.sub(r"&(?!#|amp;|lt;|gt;|quot;)", "&amp;", node["label"]))


def svg_drawing(path: Path) -> tuple[dict[str, ET.Element], set[tuple[str, str]]]:
    """The SVG's model nodes (name -> its group) and edges (producer, reader)."""
    groups = [(g.get("class"), g.findtext(f"{SVG}title"), g) for g in ET.parse(path).getroot().iter(f"{SVG}g")]
    nodes = {title: g for kind, title, g in groups if kind == "node" and not title.startswith("legend_")}
    edges = {tuple(re.sub(r":[^>]*$", "", end) for end in title.split("->")) for kind, title, _ in groups
             if kind == "edge"}
    return nodes, edges


def node_text(group: ET.Element) -> str:
    return " ".join(t.text or "" for t in group.iter(f"{SVG}text"))


def fill(group: ET.Element) -> str | None:
    """The node's background: the first filled shape of its group."""
    return next((p.get("fill") for p in group.iter(f"{SVG}polygon") if p.get("fill") not in (None, "none")), None)


def check_drawing(dot: str, svg: Path, model: Path, changed: dict[str, str],
                  facts: list[dict] | None = None) -> dict[str, str]:
    """Draw ``dot`` to ``svg`` and check it shows ``model``: a node per row and the image input, an edge per ``from``
    entry from the right output, the ``changed`` rows (node -> highlight) and no others highlighted, and each
    ``facts`` row's channels on its node. Returns node name -> its text."""
    rows = model_rows(model)
    edges = expected_edges(rows)
    nodes, drawn_edges = svg_drawing(render(dot, svg))
    assert set(nodes) == {"input"} | {f"n{s}" for s in slot_numbers(rows)}
    assert drawn_edges == {(producer, reader) for producer, _, reader in edges}
    assert edges_of(laid_out(dot)) == edges
    status = {color: name for name, color in STATUS_COLORS.items()}
    assert {name: status[fill(g)] for name, g in nodes.items() if fill(g) in status} == changed
    texts = {name: node_text(g) for name, g in nodes.items()}
    for row in facts or ():
        if _is_map(row.get("shape")):
            assert f"{row['shape'][1]} · " in texts[f"n{row['index']}"], (row, texts[f"n{row['index']}"])
    return texts


def _is_map(shape) -> bool:
    return isinstance(shape, list) and len(shape) == 4 and all(isinstance(d, int) for d in shape)
