"""Runs inside the target's Python: reads a model YAML and builds it with the target's own code."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

if __package__:  # imported as yamlforge.runners.yf_build (the tests)
    from . import yf_facts, yf_scripts, yf_tasks, yf_wrappers
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts
    import yf_scripts
    import yf_tasks
    import yf_wrappers


def load_yaml_dict(facts: dict, cfg: str) -> dict:
    """The model YAML as the target reads it (its own loader where it has one)."""
    if facts["yaml_loader"]:
        return yf_facts.load_callable(facts["yaml_loader"])(cfg)
    import yaml

    with open(cfg, encoding="utf-8") as f:
        return yaml.safe_load(f)


def known_in_namespace(name: str, namespace: dict) -> bool:
    """parse_model does ``globals()[m]``."""
    return name in namespace


def known_to_eval(name: str, namespace: dict) -> bool:
    """parse_model does ``eval(m)`` in its module."""
    try:
        eval(name, namespace)
    except Exception:
        return False
    return True


LOOKUPS = {"namespace": known_in_namespace, "eval": known_to_eval}


def is_known(name: str, namespace: dict, lookup) -> bool:
    import torch

    if name.startswith("nn."):
        return hasattr(torch.nn, name[3:])
    if name.startswith("torchvision.ops."):  # Ultralytics 8.3+: parse_model resolves these from torchvision
        return hasattr(importlib.import_module("torchvision.ops"), name[len("torchvision.ops."):])
    return lookup(name, namespace)


def unknown_modules(facts: dict, cfg_dict: dict) -> list[dict]:
    """Layers naming a module the target's parse_model cannot resolve (it would raise KeyError / NameError)."""
    namespace = vars(importlib.import_module(facts["tasks_module"]))
    lookup = LOOKUPS[facts["name_lookup"]]
    unknown = []
    for index, layer in enumerate((cfg_dict.get("backbone") or []) + (cfg_dict.get("head") or [])):
        name = layer[2] if isinstance(layer, (list, tuple)) and len(layer) > 2 else None
        if isinstance(name, str) and not is_known(name, namespace, lookup):
            unknown.append({"index": index, "module": name})
    return unknown


def missing_task(facts: dict, cfg_dict: dict, unknown: list[dict]) -> str | None:
    """The task an unknown head names (``OBB`` -> ``obb``) when the target ships no such task (its ``TASKS``)."""
    head = yf_facts.head_module(cfg_dict)
    if not facts["task_tables"] or head not in {u["module"] for u in unknown}:
        return None
    shipped = tuple(getattr(importlib.import_module(facts["task_tables"]), "TASKS", ()))
    task = head.lower()
    return task if shipped and task in yf_tasks.BATCH_PARTS and task not in shipped else None


def report_unknown(report: yf_facts.Report, unknown: list[dict], root: Path, facts: dict, cfg_dict: dict) -> None:
    task = missing_task(facts, cfg_dict, unknown)
    if task:
        shipped = ", ".join(importlib.import_module(facts["task_tables"]).TASKS)
        report.check("build", "fail", f"the head {yf_facts.head_module(cfg_dict)} makes it a model of the {task} "
                     f"task, and {facts['kind']} {facts['version']} has no {task} task: it ships {shipped}",
                     hint=f"verify it with a release that ships {task}", unknown_modules=unknown)
        return
    first = unknown[0]
    names = sorted({u["module"] for u in unknown})
    imported = report.data.get("imported") or {}
    if imported.get("inside_checkout", True):
        known_to = str(root)
    else:
        known_to = f"the {imported['package']} Python imports ({imported['file']}; see the import check)"
    report.check("build", "fail", f"layer {first['index']}: module {first['module']} is not known to {known_to}",
                 hint=" ; ".join(f"yamlforge apply --repo {root} --module {n}" for n in names),
                 unknown_modules=unknown)


def build_with_wrapper(facts: dict, cfg: str, cfg_dict: dict):
    """The model wrapper the target's entry point picks (``YOLO``, ``RTDETR``, a fork's own class) builds it, choosing
    the task and the model class for it (``YOLO`` itself may become ``YOLOWorld`` or ``YOLOE``)."""
    wrapper_cls = yf_wrappers.wrapper_class(facts, cfg, cfg_dict)
    wrapper = wrapper_cls(cfg)
    return wrapper.model, f"{wrapper_cls.__name__}({Path(cfg).name})", yf_tasks.describe(facts, wrapper)


def build_with_model_class(facts: dict, cfg: str, cfg_dict: dict):
    """The checkout's model class builds it from the YAML file (``models.yolo.Model(cfg, ch=3)``)."""
    model = yf_facts.load_callable(facts["model_class"])(cfg, ch=3)
    builder = f"{facts['model_class'].replace(':', '.')}({Path(cfg).name})"
    return model, builder, yf_scripts.describe(facts, cfg_dict, model)


BUILDERS = {"wrapper": build_with_wrapper, "model_class": build_with_model_class}


def build(report: yf_facts.Report, facts: dict, cfg: str, root: Path):
    """The target's own build; returns (the nn.Module holding ``.model`` layers or None, the YAML dict or None)."""
    try:
        cfg_dict = load_yaml_dict(facts, cfg)
    except Exception as exc:
        report.check("build", "fail", f"the target cannot read the model YAML: {yf_facts.one_line(exc)}", where=cfg)
        return None, None
    unknown = unknown_modules(facts, cfg_dict)
    if unknown:
        report_unknown(report, unknown, root, facts, cfg_dict)
        return None, cfg_dict
    started = time.perf_counter()
    try:
        model, builder, task = BUILDERS[facts["build"]](facts, cfg, cfg_dict)
    except Exception as exc:
        yf_facts.fail_at_layer(report, "build", exc, "the model does not build",
                               hint=yf_facts.hint_for(exc, facts["package"]))
        return None, cfg_dict
    report.data["builder"] = builder
    report.data["task"] = task
    report.check("build", "pass", f"{builder} built {type(model).__name__} in {time.perf_counter() - started:.1f} s")
    return model, cfg_dict
