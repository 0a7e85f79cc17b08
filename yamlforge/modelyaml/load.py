"""Reads YAML text into plain data and its node tree (the line and column of every value), errors naming the line."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node

from ..errors import YamlforgeError


def load_nodes(text: str, *, where: str, what: str) -> tuple[Any, Node | None]:
    """(data, root node) of the first document; malformed YAML is ``malformed <what>: <problem> (<where>:<line>)``.

    Positions come from the nodes, not from round-trip data, so the parser can be libyaml's (ruamel.yaml.clib), about
    ten times faster than ruamel's pure-Python one; both read YAML 1.2 and give the same data and marks.
    """
    yaml = _yaml()
    try:
        node = yaml.compose(text)
        return (yaml.constructor.construct_document(node) if node is not None else None), node
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlforgeError(f"malformed {what}: {problem}", where=f"{where}:{mark.line + 1 if mark else 1}") from None


@lru_cache(maxsize=1)
def _yaml() -> YAML:
    """One loader for every load: each ``YAML()`` searches ruamel's folder for plug-ins."""
    return YAML(typ="safe")


def entry(node: Node | None, key: str) -> tuple[Node, Node] | None:
    """(key node, value node) of ``key`` in a mapping node; None when it is not a mapping or has no such key."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return key_node, value_node
    return None


def line_of(node: Node | None, key: str | None = None) -> int:
    """1-based line of ``key``'s value in a mapping node, else of the node itself (1 without a node)."""
    found = entry(node, key) if key is not None else None
    if found is not None:
        return found[1].start_mark.line + 1
    return node.start_mark.line + 1 if node is not None else 1
