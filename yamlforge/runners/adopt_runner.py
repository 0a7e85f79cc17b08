"""Runs inside the target's Python: imports a user's module, probes its classes, prints one JSON line per class.

Standalone on purpose (the target interpreter may not have yamlforge): ``yamlforge.adopt.probing`` runs it as
``python adopt_runner.py REQUEST.json`` in a temporary folder. The request names the source (a file, loaded
under a private module name whatever its extension, or a folder put first on ``sys.path`` holding a package
with a private name) and the classes to probe with their ``--set`` values. Every result line is
``{"class": ..., "ok": true, ...}`` or ``{"class": ..., "ok": false, "error": "one line"}``, after a ``{"ready": true}``
line once torch is imported; the last line is ``{"done": true}``. A refusal says why in fields too:
``"not_a_module": true``, ``"extension": {"names": [...]}`` (a compiled operator failed; ``"package"``: the source's
folder of an unbuilt one), ``"undefined": [names]`` (a NameError), ``"no_torch": true`` (see yf_refusals).
The user's code prints to stderr: stdout's file descriptor carries only our JSON.
Progress goes to stderr as ``yamlforge-probe: <class> <layout> <size>``, so a hang can be located.

What is probed (small channel counts, batch 1, eval mode, no grad; then one train-mode forward and backward):
channel rule -- two builds (32 and 48 input channels, or the widths yf_widths finds that build) decide ``keep``,
``in_out`` (output follows a second channel argument), ``equal`` (an (inp, oup) class that runs only with
oup == inp), ``ratio`` (output a fixed multiple of the input) or ``none`` (no channel argument, output as wide
as the input); parameter names only propose which argument is the channel. When some width fails, the
``constraints`` it must meet are learnt (a multiple, powers of two); width-like required arguments are derived.
layout -- NCHW, tokens (N, L, C) with ``forward(x, H, W)``, NHWC, tokens without H, W (L a square).
sizes -- the P3-P5 map sizes of a 640 input (80, 40, 20) and odd ones (13, 21, 33); 160 only when none of
the even ones works; a backbone at image sizes (64 ... 160, and 100). If only multiples of m work, ``multiple``
is m. A layer whose output side is off its stride (``H - 2``: no padding) is refused.
outputs -- one map (a layer), a list of maps (a backbone) or (N, K) (a classifier).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import sys
import traceback
from fractions import Fraction
from pathlib import Path

if __package__:  # imported as yamlforge.runners.adopt_runner (the tests)
    from . import yf_facts, yf_refusals
    from . import yf_probe as yp
    from . import yf_widths as widths
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts
    import yf_probe as yp
    import yf_refusals
    import yf_widths as widths

ProbeError, run, one_line = yp.ProbeError, yp.run, yf_facts.one_line
C_IN, C_OUT = widths.C_IN, widths.C_OUT

IN_NAMES = ("dim", "channels", "in_channels", "c1", "inp", "in_chans", "in_dim", "dim_in", "in_ch", "in_planes",
            "inplanes", "channel", "num_channels", "c", "ch", "input_dim", "embed_dim", "n_feats", "in_features")
OUT_NAMES = ("oup", "out_channels", "c2", "out_chans", "out_dim", "dim_out", "out_ch", "outp", "out_planes",
             "output_dim", "planes", "out_features")
FEATURE_FLAGS = ("fork_feat", "features_only", "out_indices", "return_features", "feature_only",
                 "return_intermediate", "output_features", "return_stages")
FIXED_SIZE_NAMES = ("input_resolution", "resolution", "img_size", "image_size", "input_size", "feat_size")
SIZES = (40, 20, 80, 13, 21, 33)
BACKBONE_SIZES = (64, 128, 96, 160, 100)  # image sides a detector feeds (multiples of 32), and one that is not
PADDING_NAMES = ("padding", "pad", "p")
LAST_RESORT_SIZE = 160  # P2 of a 640 input: costly for global attention, so probed only when needed
MAX_STRIDE = 32  # strides are measured at a side that is a multiple of it (160 for backbones): no rounding


class NotAModule(ProbeError):
    """The class named is no torch.nn.Module subclass (a survey proposes every class whose bases it cannot see)."""


# ------------------------------------------------------------------ loading


def load_module(request: dict, dotted: str | None):
    """The user's module: a file loaded under a private name, or ``dotted`` imported from ``request['root']``."""
    import importlib.machinery
    import importlib.util

    if dotted is None:
        path = request["file"]
        name = "_yamlforge_adopted_" + "".join(ch if ch.isalnum() else "_" for ch in Path(path).stem)
        if name in sys.modules:
            return sys.modules[name]
        loader = importlib.machinery.SourceFileLoader(name, path)
        spec = importlib.util.spec_from_loader(name, loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        return module
    if request["root"] not in sys.path:
        sys.path.insert(0, request["root"])
    return importlib.import_module(dotted)


# ------------------------------------------------------------------ signature


def json_default(value):
    """A default the YAML can carry (JSON-able), or a marker holding its repr."""
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
        return {"value": value}
    except (TypeError, ValueError):
        return {"repr": repr(value)}


def constructor_params(cls) -> list[dict]:
    params = []
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        entry = {"name": p.name, "kind": p.kind.name}
        if p.default is not inspect.Parameter.empty:
            entry.update(json_default(p.default))
        params.append(entry)
    return params


def pick(params: list[dict], names: tuple[str, ...], sets: dict) -> str | None:
    by_name = {p["name"]: p for p in params if p["kind"] in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")}
    return next((n for n in names if n in by_name and n not in sets), None)


def channel_args(params: list[dict], sets: dict) -> tuple[str | None, str | None]:
    """(input, output) channel argument names proposed by the signature; a lone required first argument counts."""
    in_arg, out_arg = pick(params, IN_NAMES, sets), pick(params, OUT_NAMES, sets)
    named = [p for p in params if p["kind"] == "POSITIONAL_OR_KEYWORD"]
    if in_arg is None and named and "value" not in named[0] and "repr" not in named[0] and named[0]["name"] not in sets:
        in_arg = named[0]["name"]
    return in_arg, (out_arg if out_arg != in_arg else None)


def check_sets(cls, params: list[dict], sets: dict, channel: tuple) -> list[str]:
    """The required arguments nothing gives (a --set value, a channel width); an unknown --set name is refused."""
    known = {p["name"] for p in params}
    takes_kwargs = any(p["kind"] == "VAR_KEYWORD" for p in params)
    unknown = sorted(set(sets) - known)
    if unknown and not takes_kwargs:
        raise ProbeError(f"{cls.__name__} has no constructor argument {', '.join(unknown)} "
                         f"(it takes: {', '.join(p['name'] for p in params) or 'nothing'})")
    missing = [p["name"] for p in params if p["kind"] in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")
               and "value" not in p and "repr" not in p and p["name"] not in sets and p["name"] not in channel]
    return missing


def derived_args(cls, params: list[dict], sets: dict, in_arg: str | None, out_arg: str | None, given: dict) -> dict:
    """Arguments derived from the input width: ``given`` ones (read from the source), then width-like required ones
    found by widths.derive; other missing arguments are refused."""
    missing = [m for m in check_sets(cls, params, sets, (in_arg, out_arg)) if m not in given]
    derived = {**given, **(widths.derive(cls, sets, missing, in_arg, out_arg) if missing else {})}
    missing = [m for m in missing if m not in derived]
    if missing and not derived:
        raise ProbeError(f"{cls.__name__} needs constructor argument(s) {', '.join(missing)}: give them with "
                         + " ".join(f"--set {m}=..." for m in missing))
    return derived


def forward_extra(cls) -> tuple[str, ...]:
    """Names of ``forward``'s required arguments after x: () or ('H', 'W') or ('x_size',)."""
    params = list(inspect.signature(cls.forward).parameters.values())[2:]
    return tuple(p.name for p in params if p.default is inspect.Parameter.empty
                 and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


# ------------------------------------------------------------------ running


def find_layout(module, candidates: tuple[str, ...], channels: tuple[int, ...]):
    """The first (layout, channels, size, output) that runs; ProbeError naming each layout's failure if none."""
    failures: dict[str, str] = {}
    for size in SIZES + (LAST_RESORT_SIZE,):
        for c in channels:
            for layout in candidates:
                try:
                    return layout, c, size, run(module, layout, c, size)
                except Exception as exc:
                    failures.setdefault(layout, one_line(exc))
    if any(v.startswith("NotImplementedError") for v in failures.values()):
        raise ProbeError("forward raises NotImplementedError on CPU (a compiled or CUDA-only operator): "
                         + next(v for v in failures.values() if v.startswith("NotImplementedError")))
    raise ProbeError("forward failed in every layout: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))


# ------------------------------------------------------------------ sizes


def works(module, layout: str, channels: int, size: int, seen: dict) -> bool:
    if size not in seen:
        try:
            seen[size] = run(module, layout, channels, size)
        except Exception:
            seen[size] = None
    return seen[size] is not None


def size_multiple(module, layout: str, channels: int, seen: dict, sizes: tuple[int, ...]) -> int:
    """1 when every probed size runs; else the smallest m whose multiples (2m, 3m) run and no failing size is."""
    for size in sizes:
        works(module, layout, channels, size, seen)
    if sizes == SIZES and not any(seen[s] is not None for s in (20, 40, 80)):
        works(module, layout, channels, LAST_RESORT_SIZE, seen)
    good = [s for s, out in seen.items() if out is not None]
    bad = [s for s, out in seen.items() if out is None]
    if not bad:
        return 1
    common = math.gcd(*good)
    for m in range(2, common + 1):
        if common % m == 0 and all(s % m for s in bad) and all(works(module, layout, channels, k * m, seen)
                                                             for k in (2, 3)):
            return m
    raise ProbeError(f"runs at map sizes {sorted(good)} but not {sorted(bad)}, and no size multiple explains it")


# ------------------------------------------------------------------ decisions


def classifier_error(cls, params: list[dict], out) -> ProbeError:
    flags = [p["name"] for p in params if p["name"] in FEATURE_FLAGS]
    hint = (f"; a feature-map output may be behind {', '.join(flags)}: try " +
            " ".join(f"--set {f}=True" if f != "out_indices" else f"--set {f}=[0,1,2,3]" for f in flags)) \
        if flags else "; a detector needs feature maps, not class scores"
    return ProbeError(f"{cls.__name__} is a classifier (output {tuple(out.shape)}), not a layer or backbone{hint}")


def channel_rule(builder, first, pair: tuple[int, int], layout: str, size: int) -> dict:
    """Decide the channel rule from the first build's output and, where needed, a second build."""
    (c_in, c_out), width = pair, first.shape[1]
    if builder.out_arg and c_out != c_in and width == c_out:
        return {"rule": "in_out"}
    if builder.out_arg and c_out == c_in and width == c_in:  # a gate multiplying x by oup maps, or a constraint
        other = builder.output(layout, size, c_in, 2 * c_in)
        if other is not None and other.shape[1] == 2 * c_in:
            return {"rule": "in_out"}
        w2, second = widths.second_width(builder, layout, size, c_in)
        if second.shape[1] == w2:
            return {"rule": "equal"}
    if builder.in_arg:
        w2, second = widths.second_width(builder, layout, size, c_in)
        ratio = Fraction(width, c_in)
        if Fraction(second.shape[1], w2) != ratio:
            raise ProbeError(f"output width ({width} for {builder.in_arg}={c_in}, {second.shape[1]} for "
                             f"{builder.in_arg}={w2}) does not follow {builder.in_arg}")
        return {"rule": "keep"} if ratio == 1 else {"rule": "ratio", "ratio": [ratio.numerator, ratio.denominator]}
    return {"rule": "none"}


def probe_none(module, layout, size, first) -> None:
    """A module without a channel argument must run at any width and keep it."""
    try:
        second = run(module, layout, C_OUT, size)
    except Exception as exc:
        raise ProbeError(f"runs only with {C_IN} input channels and no constructor argument sets the width "
                         f"({one_line(exc)}); name it with --set") from None
    if first.shape[1] != C_IN or second.shape[1] != C_OUT:
        raise ProbeError(f"output width {first.shape[1]} for {C_IN} input channels and no constructor argument "
                         "sets it; only width-keeping modules can go without one")


def locate(cls, module, params: list[dict], in_arg: str | None, c_in: int = C_IN, sets: dict | None = None):
    """find_layout, with the reason a class built for one fixed map size fails everywhere."""
    layouts, channels = yp.layouts(forward_extra(cls)), (c_in,) if in_arg else (c_in, 3)
    try:
        return find_layout(module, layouts, channels)
    except ProbeError as exc:
        fixed = [p["name"] for p in params if p["name"] in FIXED_SIZE_NAMES]
        if fixed:
            raise ProbeError(f"{cls.__name__} is built for one fixed map size ({fixed[0]}); a detector's maps change "
                             "size with the image, so adopt refuses it") from None
        raise yf_refusals.fixed_size_error(cls, module, params, sets or {}, layouts, channels) or exc from None


def first_build(builder, params: list[dict]):
    """((c_in, c_out), module, layout, channels, size, output) of the first width pair that builds and runs."""
    error = None
    for pair in widths.first_pairs(builder):
        try:
            module = builder(*pair)
            return (pair, module, *locate(builder.cls, module, params, builder.in_arg, pair[0], builder.sets))
        except ProbeError as exc:
            builder.failed = True
            error = error or exc
    raise error


def check_shrink(params: list[dict], layout: str, seen: dict, stride: Fraction) -> None:
    """A layer's output side must be its input's at its stride: ``H - 2`` (a conv without padding) is refused."""
    for size, out in sorted(seen.items()):
        side = out.shape[-1] if out is not None else None
        if side is None or side in (size * stride.denominator // stride.numerator,
                                    -(-size * stride.denominator // stride.numerator)):
            continue
        pad = next((p["name"] for p in params if p["name"] in PADDING_NAMES), None)
        fix = f"; try --set {pad}={(size - side) // 2}" if pad and side < size else ""
        off = f"{size - side} pixels smaller than" if side < size else f"{side - size} pixels larger than"
        raise ProbeError(f"the output map is {off} its input ({size} -> {side} in {layout}): neither stride "
                         f"{stride} nor a whole resampling factor, so a detector's maps would not line up{fix}")


def measure(module, layout: str, channels: int, seen: dict) -> dict:
    """Size multiple, the sizes that ran and the output stride(s), measured at the side that divides best."""
    backbone = isinstance(next(iter(seen.values())), list)
    multiple = size_multiple(module, layout, channels, seen, BACKBONE_SIZES if backbone else SIZES)
    sizes = sorted(s for s, out in seen.items() if out is not None)
    big = max(sizes, key=lambda s: (s % MAX_STRIDE == 0, s))
    found = {"multiple": multiple, "sizes": sizes}
    if backbone:
        found.update(role="backbone", width_list=getattr(module, "width_list", None), outputs=[
            {"channels": o.shape[1], "stride": str(yp.stride_of(big, o.shape[-1]))} for o in seen[big]])
    else:
        found.update(role="layer", stride=str(yp.stride_of(big, seen[big].shape[-1])))
    return found


def probe_class(cls, sets: dict, given: dict | None = None) -> dict:
    import torch

    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise NotAModule(f"{getattr(cls, '__name__', cls)} is not a torch.nn.Module subclass")
    params = constructor_params(cls)
    in_arg, out_arg = channel_args(params, sets)
    given = {name: Fraction(*ratio) for name, ratio in (given or {}).items()}
    builder = widths.Builder(cls, sets, in_arg, out_arg, derived_args(cls, params, sets, in_arg, out_arg, given))
    pair, module, layout, c, size, first = first_build(builder, params)
    widths.tie_to_width(builder, layout, size, pair[0])
    if isinstance(first, torch.Tensor) and first.ndim == 2:
        raise classifier_error(cls, params, first)
    seen = {size: first}
    result = {"class": cls.__name__, "ok": True, "params": params, "in_arg": in_arg, "out_arg": out_arg,
              "layout": layout, "image_channels": c, **measure(module, layout, c, seen),
              "derived": {k: [v.numerator, v.denominator] for k, v in builder.derived.items()}}
    if result["role"] == "layer":
        check_shrink(params, layout, seen, Fraction(result["stride"]))
        if in_arg is None:
            probe_none(module, layout, size, first)
        result.update(channel_rule(builder, first, pair, layout, size))
        result["constraints"] = widths.learn(builder, layout, size) if builder.failed else {}
    yp.check_training(module, layout, c, size)
    return result


# ------------------------------------------------------------------ main


def refusal(name: str, error: str, **fields) -> dict:
    """A class's answer when it cannot be adopted; ``extension`` when the error is a compiled operator's (named
    ``*_ext`` modules in ``names``)."""
    return {"class": name, "ok": False, "error": error, **yf_refusals.failure_fields(error), **fields}


def probe_one(request: dict, item: dict) -> dict:
    name = item["class"]
    try:
        module = load_module(request, item.get("module"))
    except Exception as exc:
        return refusal(name, f"importing the source failed: {one_line(exc)}", traceback=traceback.format_exc()[-3000:],
                       **yf_refusals.import_failure_fields(exc))
    try:
        cls = getattr(module, name)
    except AttributeError:
        return refusal(name, f"no class {name} in the source")
    try:
        return probe_class(cls, item.get("sets") or {}, item.get("derived"))
    except NotAModule as exc:
        return refusal(name, str(exc), not_a_module=True)
    except ProbeError as exc:
        return refusal(name, str(exc))
    except Exception as exc:
        return refusal(name, one_line(exc), traceback=traceback.format_exc()[-3000:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("request", help="JSON file: {root, file, probes: [{class, module, sets}]}")
    args = parser.parse_args(argv)
    request = json.loads(Path(args.request).read_text(encoding="utf-8"))
    json_out = yf_facts.json_stdout()  # the user's prints (even from C code) go to stderr
    try:
        import torch
    except Exception as exc:  # no torch, or one that fails to load: no class can be probed
        no_torch = f"torch does not import in this Python: {one_line(exc)}"
    else:
        no_torch = None
        torch.set_num_threads(1)  # tiny tensors: thread start-up would cost more than it saves
        with contextlib.suppress(Exception):
            torch.manual_seed(0)
    json_out.write(json.dumps({"ready": True}) + "\n")  # torch imported (or not importable): per-class timeouts start
    json_out.flush()
    for item in request["probes"]:
        answer = refusal(item["class"], no_torch, no_torch=True) if no_torch else probe_one(request, item)
        json_out.write(json.dumps(answer, default=str) + "\n")
        json_out.flush()
    json_out.write(json.dumps({"done": True}) + "\n")
    json_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
