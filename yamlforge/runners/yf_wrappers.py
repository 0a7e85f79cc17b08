"""Runs inside the target's Python: the model wrapper class the target's own entry point picks for a model file.

``yolo train model=X.yaml`` chooses the wrapper in the target's CLI (Ultralytics' ``cfg.entrypoint``): an
``if``/``elif`` chain on the file name (``"rtdetr" in stem`` -> ``RTDETR``, a fork's ``"yolov10" in stem`` ->
``YOLOv10``, else ``YOLO``). :func:`entry_choice` reads that chain from the checkout's own source and evaluates its
conditions, as written, on the model file's name; each branch's ``model = NAME(model ...)`` names the class. So a
fork registering its own class there is built, trained and exported with it, with no branch of ours. Where the chain
takes its default branch (or the target has none), the head decides (``facts["wrappers"]``: an RT-DETR head named
anything builds with ``RTDETR``, as 8.4's ``YOLO`` itself reroutes it).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from pathlib import Path
from typing import NamedTuple

if __package__:  # imported as yamlforge.runners.yf_wrappers (the tests)
    from . import yf_facts
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts


class Branch(NamedTuple):
    test: ast.expr | None  # None: the chain's default (its final else)
    module: str | None  # the module the branch imports the class from; None: the entry point's own globals
    name: str  # the class the branch builds the model with


def built_class(body: list[ast.stmt]) -> tuple[str | None, str] | None:
    """``(module, class)`` of a branch that does ``model = NAME(model, ...)`` (importing NAME in the branch)."""
    for node in body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "model" and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)):
            name = node.value.func.id
            module = next((i.module for i in body if isinstance(i, ast.ImportFrom)
                           and any((a.asname or a.name) == name for a in i.names)), None)
            return module, name
    return None


def chain(tree: ast.AST) -> list[Branch]:
    """The first ``if``/``elif`` chain whose branches each build the model with a class, in order."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.If) and built_class(node.body)):
            continue
        branches = []
        while True:
            found = built_class(node.body)
            if found is None:
                return branches
            branches.append(Branch(node.test, *found))
            if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
                node = node.orelse[0]
                continue
            default = built_class(node.orelse)
            return branches + ([Branch(None, *default)] if default else [])
    return []


def local_values(function_tree: ast.AST, before: int, names: set[str], scope: dict) -> dict:
    """The values the chain's conditions read (``stem = Path(model).stem.lower()``): the last top-level assignment
    to each before line ``before``, evaluated in ``scope``."""
    body = function_tree.body[0].body if function_tree.body else []
    values: dict = {}
    for node in body:
        if (isinstance(node, ast.Assign) and node.lineno < before and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in names):
            try:
                values[node.targets[0].id] = eval(compile(ast.Expression(node.value), "<entry>", "eval"),
                                                  {**scope, **values})
            except Exception:  # a value that needs more than the model file: its conditions cannot be read
                values.pop(node.targets[0].id, None)
    return values


def entry_choice(entry_point: str | None, cfg: str) -> tuple[object, bool] | None:
    """(the class the target's entry point builds ``cfg`` with, whether that is the chain's default), or None when
    the entry point has no such chain or a condition cannot be evaluated on a file name alone."""
    if not entry_point:
        return None
    module_name, _, function_name = entry_point.partition(":")
    module = importlib.import_module(module_name)
    tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(module, function_name))))
    scope = {**vars(module), "model": cfg, "task": None}
    for branch in chain(tree):
        if branch.test is not None:
            names = {n.id for n in ast.walk(branch.test) if isinstance(n, ast.Name)}
            env = {**scope, **local_values(tree, branch.test.lineno, names, scope)}
            try:
                if not eval(compile(ast.Expression(branch.test), "<entry>", "eval"), env):
                    continue
            except Exception:
                return None
        owner = importlib.import_module(branch.module) if branch.module else module
        return getattr(owner, branch.name), branch.test is None
    return None


def wrapper_class(facts: dict, cfg: str, cfg_dict: dict):
    """The wrapper ``yolo train model=cfg`` would use; the head decides where the entry point's default would."""
    chosen = entry_choice(facts.get("entry_point"), str(Path(cfg)))
    if chosen is not None and not chosen[1] and builds_models(chosen[0]):
        return chosen[0]
    return getattr(importlib.import_module(facts["package"]), yf_facts.by_head(facts["wrappers"], cfg_dict))


def builds_models(wrapper) -> bool:
    """The wrapper's ``task_map`` names a model class for some task: 8.0's ``SAM`` and ``NAS`` only predict (their
    branch catches any file name with "sam" or "nas" in it), so a YAML built with them is the head's to decide."""
    try:
        tasks = class_task_map(wrapper)
    except Exception:
        return True  # a fork's own map that needs its instance: it is the fork's choice
    return not isinstance(tasks, dict) or any("model" in parts for parts in tasks.values() if isinstance(parts, dict))



def class_task_map(wrapper):
    """The wrapper class's ``task_map``: a property of the class that reads nothing of the instance, in every
    release (a fork's own map that needs its instance raises)."""
    task_map = getattr(wrapper, "task_map", None)
    return task_map.fget(None) if isinstance(task_map, property) else task_map
