"""``--backbone timm:NAME``: ask the target's Python once what the timm model offers, and make its TimmBackbone row.

The model's stage widths and reductions come from ``runners/timm_runner.py`` run in the target's Python (the timm
the model will be built with); the row keeps the model name, the strides the head reads and the create_model
options (plus the dynamic-size switch timm needs, if any), so gen-yaml, graph and verify count its outputs
without asking timm again (the spec's ``stride: strides``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import YamlforgeError

PREFIX = "timm:"
SPEC_NAME = "TimmBackbone"  # module_specs/timm_backbone.yaml
TIMEOUT = 300  # seconds: importing timm and building one model on the meta device (a pretrained_file: for real)


def is_timm(module: str | None) -> bool:
    """``timm:NAME`` names a timm model as backbone."""
    return bool(module) and module.startswith(PREFIX)


@dataclass(frozen=True)
class TimmStages:
    """What timm builds for a model with ``features_only=True``: per stage its channels and reduction."""

    name: str
    channels: tuple[int, ...]
    reductions: tuple[int, ...]
    options: dict[str, Any]  # the create_model options given, plus the dynamic-size switch timm needed


def _python(python: str | None) -> str:
    # imported here: the subprocess machinery costs every gen-yaml call ~10 ms, and only a timm backbone needs it
    from ..target_python import resolve_python

    return resolve_python(python)


def _run_timm(args: list[str], python: str | None, timeout: float):
    """timm_runner.py's answer to ``args`` in the target's Python."""
    from ..target_python import RUNNERS, run_runner

    return run_runner(RUNNERS / "timm_runner.py", args, python=_python(python), timeout=timeout)


def ask_timm(name: str, options: dict[str, Any], python: str | None, option: str) -> TimmStages:
    """Run timm_runner.py in the target's Python (or take its answer from the cache, kept while that Python, its
    timm and a ``pretrained_file`` are unchanged); a model timm refuses is one error naming ``option``."""
    from .. import stamped_cache

    entry = stamped_cache.entry_file("timm-info", json.dumps([_python(python), name, options], sort_keys=True))
    raw = stamped_cache.read(entry)
    if raw is None:
        raw = _timm_info(name, options, python, option)
        read_from = [_python(python), raw.get("timm_file"), options.get("pretrained_file")]
        if raw.get("timm_file"):
            stamped_cache.write(entry, raw, [Path(f) for f in read_from if f])
    return stages_of(raw, name, option)


def _timm_info(name: str, options: dict[str, Any], python: str | None, option: str) -> dict:
    """timm_runner.py's ``info`` answer for ``name``; no answer, or no timm, is one error naming ``option``."""
    answer = _run_timm(["info", "--model", name, "--options", json.dumps(options)], python, TIMEOUT)
    raw = answer.data
    if raw is None:
        raise YamlforgeError(f"the timm subprocess gave no answer: {answer.tail(2, sep=' ')}", where=option)
    if raw.get("missing"):
        raise YamlforgeError(f"timm is not installed in {_python(python)}", where=option,
                             hint="pip install timm (in the Python that trains the model; --python names it)")
    return raw


def stages_of(raw: dict, name: str, option: str) -> TimmStages:
    """The runner's answer about ``name`` as stages, or its refusal as one error (with timm's close names)."""
    if "refused" in raw:
        close = raw.get("close") or []
        raise YamlforgeError(raw["refused"] + (f"; close: {', '.join(close)}" if close else ""), where=option,
                             hint="yamlforge list --timm PATTERN  # models that fit, with their widths and strides")
    return TimmStages(name, tuple(raw["channels"]), tuple(raw["reductions"]), raw["options"])


def head_strides(old_strides: dict, backbone: set, readers) -> list[Fraction]:
    """The strides at which the head (``readers``: layers outside the backbone) reads the old backbone, ascending."""
    read = {old_strides.get((ref.producer, ref.output)) for layer in readers for ref in layer.refs
            if ref.producer in backbone}
    return sorted(s for s in read if s is not None)


def pick_strides(stages: TimmStages, needed: list[Fraction], option: str) -> tuple[int, ...]:
    """The strides the row gets: those the head reads, each a reduction of one of the model's stages."""
    missing = [s for s in needed if s not in stages.reductions]
    if missing:
        have = sorted(set(stages.reductions))
        raise YamlforgeError(f"{stages.name} has no feature map at stride {', '.join(str(s) for s in missing)}, "
                             f"which the head reads (its stages: {', '.join(str(s) for s in have)})", where=option,
                             hint="pick a model with stages at 8, 16 and 32 (64 for a P6 head): yamlforge list --timm")
    return tuple(int(s) for s in needed)


HEAD_STRIDES = {"P3-P5": (8, 16, 32), "P3-P6": (8, 16, 32, 64)}  # what detection heads read


def survey_timm(pattern: str, python: str | None) -> tuple[str, list[dict]]:
    """(timm version, a row per timm model matching ``pattern``): stage widths and strides, the heads it fits.

    Widths and strides are not in timm's metadata, so the runner builds each model once on the meta device (no
    weights, no memory) and keeps the rows in the cache per timm version; ``fixed_input_size`` comes from timm's
    pretrained cfgs (metadata, no build). gen-yaml still checks the input size for real before writing a row.
    """
    from ..scratch import cache_dir

    args = ["list", "--pattern", pattern, "--cache", str(cache_dir() / "timm-survey.json")]
    answer = _run_timm(args, python, 3600)
    raw = answer.data
    if raw is None or raw.get("missing"):
        why = "timm is not installed" if raw else answer.tail(2, sep=" ")
        raise YamlforgeError(f"cannot list timm models: {why}", where="--timm", hint="pip install timm")
    for row in raw["models"]:
        have = set(row.get("reductions", ()))
        row["fits"] = [head for head, strides in HEAD_STRIDES.items() if have >= set(strides)]
    return raw["timm"], raw["models"]
