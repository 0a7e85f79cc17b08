"""Runs inside the target's Python: what a timm model offers as a backbone (stage widths and strides), as JSON.

``yamlforge.modelyaml.timm`` runs it as ``python timm_runner.py info --model NAME --options JSON --sizes 64 96``
(gen-yaml ``--backbone timm:NAME``) or ``python timm_runner.py list [--pattern P]`` (``yamlforge list --timm``)
and reads one JSON object from its last stdout line. Models are built on torch's meta device: timm runs its
constructor (so ``feature_info`` is the real one) but no tensor is allocated and no weight is read, which takes
milliseconds per model. Only a ``pretrained_file`` is loaded for real, to refuse a file of another model before
gen-yaml writes anything. Like its siblings, this file imports nothing from yamlforge (only ``yf_facts``).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import warnings
from pathlib import Path

if __package__:  # imported as yamlforge.runners.timm_runner (the tests)
    from . import yf_facts
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts

SCHEMA = "yamlforge.timm/1"
# Tried in this order when a model refuses sizes other than its own: timm's switches to a dynamic input size.
DYNAMIC_SIZE_OPTIONS = ({"dynamic_img_size": True}, {"strict_img_size": False})
DEFAULT_SIZES = (64, 96)  # two multiples of 32, one odd: a fixed-size model or a window that cannot pad fails one


def _meta_model(timm, torch, name: str, options: dict):
    """``create_model(name, features_only=True, **options)`` on the meta device (no weights, no memory)."""
    options = {k: v for k, v in options.items() if k not in ("pretrained", "pretrained_file")}
    with torch.device("meta"):
        return timm.create_model(name, features_only=True, **options)


def close_names(timm, name: str) -> list[str]:
    """What timm's own pattern matching finds for ``name`` (``*name*``, then each part), else difflib's nearest."""
    arch = name.partition(".")[0]
    found = timm.list_models(f"*{arch}*")
    for part in arch.split("_"):
        if not found and len(part) > 2:
            found = timm.list_models(f"*{part}*")
    return found[:6] or difflib.get_close_matches(arch, timm.list_models(), n=4, cutoff=0.6)


def _runs_at(torch, model, sizes) -> str | None:
    """None when the model runs at every size (on the meta device: shapes only), else the first line of the error."""
    model.eval()  # batch 1 through a squeeze-excite BatchNorm would fail in training mode
    for size in sizes:
        try:
            model(torch.empty(1, 3, size, size, device="meta"))
        except Exception as exc:  # any failure at this size is the answer
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
    return None


def measured_reductions(torch, model, size: int) -> list[int | float]:
    """The strides the model's feature maps actually have at ``size`` (meta device: shapes only)."""
    features = model(torch.empty(1, 3, size, size, device="meta"))
    channels_last = str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC")
    heights = [f.shape[1] if channels_last else f.shape[2] for f in features]
    return [size // h if size % h == 0 else size / h for h in heights]


def sized_options(timm, torch, name: str, options: dict, sizes) -> tuple[object, dict, str | None]:
    """(meta model, options, why refused): the options plus the first of timm's dynamic-size switches the model needs to
    run at ``sizes``; ``why`` says why none works."""
    model = _meta_model(timm, torch, name, options)
    failure = _runs_at(torch, model, sizes)
    if failure is None:
        return model, options, None
    for extra in DYNAMIC_SIZE_OPTIONS:
        try:
            candidate = _meta_model(timm, torch, name, {**options, **extra})
        except TypeError:  # the model does not take this switch
            continue
        if _runs_at(torch, candidate, sizes) is None:
            return candidate, {**options, **extra}, None
    return model, options, f"accepts only one input size ({failure}), and timm has no dynamic-size option for it"


def check_file(timm, name: str, options: dict, path: str) -> str | None:
    """None when timm loads ``path`` into ``name`` (its own loader, ``pretrained_cfg_overlay``), else one line why not.

    timm loads a features_only model's weights non-strictly and only logs the keys a file lacks: those the feature
    model holds (its stage names join nested modules with '_') make the refusal.
    """
    import logging

    kwargs = {k: v for k, v in options.items() if k not in ("pretrained", "pretrained_file")}
    missing: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: missing.extend(_missing_keys(record.getMessage()))
    logger = logging.getLogger("timm.models._builder")
    level, _ = logger.level, logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        model = timm.create_model(name, features_only=True, pretrained=True, pretrained_cfg_overlay={"file": path},
                                  **kwargs)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        return f"{path} does not load into {name}: " + "; ".join(
            line.strip() for line in str(exc).splitlines() if line.strip())[:200]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    held = {key.replace(".", "_") for key in model.state_dict()}
    lacking = [key for key in missing if key.replace(".", "_") in held]
    if lacking:
        return f"{path} does not load into {name}: {len(lacking)} of its tensors are not in the file (e.g. " \
               f"{', '.join(lacking[:3])})"
    return None


def _missing_keys(message: str) -> list[str]:
    """The keys of timm's 'Missing keys (a, b) discovered while loading pretrained weights.' log line."""
    if not message.startswith("Missing keys ("):
        return []
    return message.removeprefix("Missing keys (").partition(") discovered")[0].split(", ")


def info(name: str, options: dict, sizes) -> dict:
    """The stages of ``name`` (channels, reductions), the options it needs, or why it is refused."""
    import timm
    import torch

    if not timm.is_model(name.partition(".")[0]):
        return {"refused": f"timm {timm.__version__} has no model '{name}'", "close": close_names(timm, name)}
    try:
        model, options, why = sized_options(timm, torch, name, options, sizes)
    except Exception as exc:  # a model timm cannot build as features_only, or a bad option
        return {"refused": f"timm cannot build {name} with features_only=True: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}"[:300]}
    answer = {"channels": list(model.feature_info.channels()), "reductions": list(model.feature_info.reduction()),
              "options": options, "timm": timm.__version__}
    measured = None if why else measured_reductions(torch, model, max(sizes))
    if why:
        answer["refused"] = f"{name} {why}"
    elif measured != answer["reductions"]:
        answer["refused"] = (f"{name}'s feature maps come out at strides {measured}, not at those timm's feature_info "
                             f"gives ({answer['reductions']}), so its outputs cannot be picked by stride")
    elif options.get("pretrained_file"):
        problem = check_file(timm, name, options, str(options["pretrained_file"]))
        if problem:
            answer["refused"] = problem
    return answer


def survey(pattern: str | None, cache: str | None = None) -> dict:
    """Every timm architecture matching ``pattern``: its stage widths and reductions (meta-device builds), whether
    its pretrained weights are fixed-size (``fixed_input_size`` of timm's pretrained cfg: metadata, no build), or why
    it gives no features. ``cache`` (a JSON file) keeps the rows per timm version: each model is built once."""
    import timm
    import torch

    known = _read_cache(cache)
    rows = known.setdefault(timm.__version__, {})
    names = timm.list_models(pattern or "*")
    for name in names:
        if name not in rows:
            rows[name] = _survey_row(timm, torch, name)
    if cache and any(name not in _read_cache(cache).get(timm.__version__, {}) for name in names):
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        Path(cache).write_text(json.dumps(known), encoding="utf-8")
    return {"timm": timm.__version__, "models": [{"name": name, **rows[name]} for name in names]}


def _read_cache(cache: str | None) -> dict:
    try:
        return json.loads(Path(cache).read_text(encoding="utf-8")) if cache else {}
    except (OSError, ValueError):
        return {}


def _survey_row(timm, torch, name: str) -> dict:
    cfg = timm.models.get_pretrained_cfg(name)
    row = {"fixed_input_size": bool(getattr(cfg, "fixed_input_size", False)),
           "pretrained": timm.models.is_model_pretrained(name)}
    try:
        model = _meta_model(timm, torch, name, {})
        row.update(channels=list(model.feature_info.channels()), reductions=list(model.feature_info.reduction()))
    except Exception as exc:  # listed with its reason instead
        row["error"] = yf_facts.one_line(exc)[:160]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=("info", "list"))
    parser.add_argument("--model")
    parser.add_argument("--options", default="{}")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(DEFAULT_SIZES))
    parser.add_argument("--pattern")
    parser.add_argument("--cache")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    try:
        import timm  # the one requirement
    except ImportError:
        answer = {"schema": SCHEMA, "missing": "timm"}
    else:  # an info answer names timm's file: yamlforge keeps it while that file is unchanged
        body = {**info(args.model, json.loads(args.options), args.sizes), "timm_file": timm.__file__} \
            if args.command == "info" else survey(args.pattern, args.cache)
        answer = {"schema": SCHEMA, **body}
    sys.stdout.write("\n" + json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
