"""Runs inside the target's Python: imports a user's module, probes its classes, prints one JSON line per class.

Standalone on purpose (the target interpreter may not have yamlforge): ``yamlforge.adopt.engine`` runs it as
``python adopt_runner.py REQUEST.json`` in a temporary folder. The request names the source (a file, loaded
under a private module name whatever its extension, or a folder put first on ``sys.path`` holding a package
with a private name) and the classes to probe with their ``--set`` values. Every result line is
``{"class": ..., "ok": true, ...}`` or ``{"class": ..., "ok": false, "error": "one line"}``, after a ``{"ready": true}`` line once torch is
imported; the last line is ``{"done": true}``. The user's code prints to stderr: stdout's file descriptor carries only our JSON.
Progress goes to stderr as ``yamlforge-probe: <class> <layout> <size>``, so a hang can be located.

What is probed (small channel counts, batch 1, eval mode, no grad):
channel rule -- two builds (32 and 48 input channels) decide ``keep``, ``in_out`` (output follows a second
channel argument), ``ratio`` (output a fixed multiple of the input) or ``none`` (no channel argument, output
as wide as the input); parameter names only propose which argument is the channel.
layout -- NCHW, tokens (N, L, C) with ``forward(x, H, W)``, NHWC, tokens without H, W (L a square).
sizes -- the P3-P5 map sizes of a 640 input (80, 40, 20) and odd ones (13, 21, 33); 160 only when none of
the even ones works. If only multiples of m work, ``multiple`` is m.
outputs -- one map (a layer), a list of maps (a backbone) or (N, K) (a classifier).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import sys
import traceback
from fractions import Fraction
from pathlib import Path

IN_NAMES = ("dim", "channels", "in_channels", "c1", "inp", "in_chans", "in_dim", "dim_in", "in_ch", "in_planes",
            "inplanes", "channel", "num_channels", "c", "ch", "input_dim", "embed_dim", "n_feats", "in_features")
OUT_NAMES = ("oup", "out_channels", "c2", "out_chans", "out_dim", "dim_out", "out_ch", "outp", "out_planes",
             "output_dim", "planes", "out_features")
FEATURE_FLAGS = ("fork_feat", "features_only", "out_indices", "return_features", "feature_only",
                 "return_intermediate", "output_features", "return_stages")
FIXED_SIZE_NAMES = ("input_resolution", "resolution", "img_size", "image_size", "input_size", "feat_size")
HW_NAMES = ("H", "W", "h", "w", "height", "width")
SIZE_NAMES = ("x_size", "hw_shape", "hw", "size", "shape")
C_IN, C_OUT = 32, 48  # distinct from every probed size, so NCHW and NHWC cannot be confused
SIZES = (40, 20, 80, 13, 21, 33)
LAST_RESORT_SIZE = 160  # P2 of a 640 input: costly for global attention, so probed only when needed
MAX_STRIDE = 32  # strides are measured at a side that is a multiple of it (160 for backbones): no rounding


class ProbeError(Exception):
    """A one-line reason the class cannot be adopted."""


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text[:300]}"


def progress(*parts) -> None:
    print("yamlforge-probe:", *parts, file=sys.stderr, flush=True)


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


def check_sets(cls, params: list[dict], sets: dict, channel: tuple) -> None:
    known = {p["name"] for p in params}
    takes_kwargs = any(p["kind"] == "VAR_KEYWORD" for p in params)
    unknown = sorted(set(sets) - known)
    if unknown and not takes_kwargs:
        raise ProbeError(f"{cls.__name__} has no constructor argument {', '.join(unknown)} "
                         f"(it takes: {', '.join(p['name'] for p in params) or 'nothing'})")
    missing = [p["name"] for p in params if p["kind"] in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY")
               and "value" not in p and "repr" not in p and p["name"] not in sets and p["name"] not in channel]
    if missing:
        raise ProbeError(f"{cls.__name__} needs constructor argument(s) {', '.join(missing)}: give them with "
                         + " ".join(f"--set {m}=..." for m in missing))


def forward_extra(cls) -> tuple[str, ...]:
    """Names of ``forward``'s required arguments after x: () or ('H', 'W') or ('x_size',)."""
    params = list(inspect.signature(cls.forward).parameters.values())[2:]
    return tuple(p.name for p in params if p.default is inspect.Parameter.empty
                 and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


# ------------------------------------------------------------------ running


def build(cls, sets: dict, in_arg: str | None, out_arg: str | None, c_in: int, c_out: int):
    kwargs = dict(sets)
    if in_arg:
        kwargs[in_arg] = c_in
    if out_arg:
        kwargs[out_arg] = c_out
    try:
        return cls(**kwargs).eval()
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ProbeError(f"{cls.__name__}({shown}) failed: {one_line(exc)}") from None


def layouts(extra: tuple[str, ...]) -> tuple[str, ...]:
    if len(extra) == 2 and set(extra) <= set(HW_NAMES):
        return ("tokens_hw",)
    if len(extra) == 1 and extra[0] in SIZE_NAMES:
        return ("tokens_size",)
    if extra:
        raise ProbeError(f"forward needs arguments {', '.join(extra)} besides x; only (x), (x, H, W) and "
                         "(x, x_size) can be fed by a detector")
    return ("nchw", "nhwc", "tokens")


def run(module, layout: str, channels: int, size: int):
    """One forward; the output as (N, C, H, W) maps, a list of them, or an (N, K) tensor."""
    import torch

    progress(type(module).__name__, layout, size)
    shape = {"nchw": (1, channels, size, size), "nhwc": (1, size, size, channels)}.get(layout, (1, size * size, channels))
    x = torch.randn(shape)
    args = {"tokens_hw": (size, size), "tokens_size": ((size, size),)}.get(layout, ())
    with torch.no_grad():
        out = module(x, *args)
    return to_nchw(out, layout)


def tokens_to_nchw(t):
    side = math.isqrt(t.shape[1])
    if side * side != t.shape[1]:
        raise ProbeError(f"returned {t.shape[1]} tokens, not a square map")
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], side, side)


def unwrap_tokens(out, layout: str):
    """``(tokens, H, W)``, as patch-merging layers return it, is the tokens."""
    if layout.startswith("tokens") and isinstance(out, (list, tuple)) and len(out) == 3 \
            and all(isinstance(v, int) for v in out[1:]):
        return out[0]
    return out


def to_nchw(out, layout: str):
    import torch

    out = unwrap_tokens(out, layout)
    if isinstance(out, (list, tuple)):
        if not out or not all(isinstance(o, torch.Tensor) and o.ndim == 4 for o in out):
            raise ProbeError("returned a list/tuple that is not a list of (N, C, H, W) feature maps")
        return list(out)
    if not isinstance(out, torch.Tensor):
        raise ProbeError(f"returned a {type(out).__name__}, not a tensor")
    expected = {"nchw": 4, "nhwc": 4}.get(layout, 3)
    if out.ndim not in (2, expected):
        raise ProbeError(f"returned shape {tuple(out.shape)} for {layout} input")
    if out.ndim == 2:
        return out
    if layout == "nhwc":
        return out.permute(0, 3, 1, 2)
    return tokens_to_nchw(out) if expected == 3 else out


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
    raise ProbeError("forward failed in every layout: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))


def stride_of(size: int, out_size: int) -> Fraction:
    if out_size >= size:
        if out_size % size:
            raise ProbeError(f"output size {out_size} for input {size} is no whole upsampling factor")
        return Fraction(1, out_size // size)
    k = 2 ** round(math.log2(size / out_size))
    if abs(size / k - out_size) <= 1:
        return Fraction(k)
    return Fraction(round(size / out_size))


# ------------------------------------------------------------------ sizes


def works(module, layout: str, channels: int, size: int, seen: dict) -> bool:
    if size not in seen:
        try:
            seen[size] = run(module, layout, channels, size)
        except Exception:
            seen[size] = None
    return seen[size] is not None


def size_multiple(module, layout: str, channels: int, seen: dict) -> int:
    """1 when every probed size runs; else the smallest m whose multiples (2m, 3m) run and no failing size is."""
    for size in SIZES:
        works(module, layout, channels, size, seen)
    if not any(seen[s] is not None for s in (20, 40, 80)):
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


def channel_rule(cls, first, sets, in_arg, out_arg, layout, size) -> dict:
    """Decide the channel rule from the first build's output and, where needed, a second build or input width."""
    width = first.shape[1]
    if out_arg and width == C_OUT:
        return {"rule": "in_out"}
    if in_arg:
        second = run(build(cls, sets, in_arg, out_arg, C_OUT, C_IN), layout, C_OUT, size)
        ratio = Fraction(width, C_IN)
        if Fraction(second.shape[1], C_OUT) != ratio:
            raise ProbeError(f"output width ({width} for {in_arg}={C_IN}, {second.shape[1]} for {in_arg}={C_OUT}) "
                             f"does not follow {in_arg}")
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


def locate(cls, module, params: list[dict], in_arg: str | None):
    """find_layout, with the reason a class built for one fixed map size fails everywhere."""
    try:
        return find_layout(module, layouts(forward_extra(cls)), (C_IN,) if in_arg else (C_IN, 3))
    except ProbeError:
        fixed = [p["name"] for p in params if p["name"] in FIXED_SIZE_NAMES]
        if fixed:
            raise ProbeError(f"{cls.__name__} is built for one fixed map size ({fixed[0]}); a detector's maps change "
                             "size with the image, so adopt refuses it") from None
        raise


def measure(module, layout: str, channels: int, seen: dict) -> dict:
    """Size multiple, the sizes that ran and the output stride(s), measured at the side that divides best."""
    multiple = size_multiple(module, layout, channels, seen)
    backbone = isinstance(next(iter(seen.values())), list)
    if backbone:
        works(module, layout, channels, LAST_RESORT_SIZE, seen)
    sizes = sorted(s for s, out in seen.items() if out is not None)
    big = max(sizes, key=lambda s: (s % MAX_STRIDE == 0, s))
    found = {"multiple": multiple, "sizes": sizes}
    if backbone:
        found.update(role="backbone", width_list=getattr(module, "width_list", None), outputs=[
            {"channels": o.shape[1], "stride": str(stride_of(big, o.shape[-1]))} for o in seen[big]])
    else:
        found.update(role="layer", stride=str(stride_of(big, seen[big].shape[-1])))
    return found


def probe_class(cls, sets: dict) -> dict:
    import torch

    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ProbeError(f"{getattr(cls, '__name__', cls)} is not a torch.nn.Module subclass")
    params = constructor_params(cls)
    in_arg, out_arg = channel_args(params, sets)
    check_sets(cls, params, sets, (in_arg, out_arg))
    module = build(cls, sets, in_arg, out_arg, C_IN, C_OUT)
    layout, c, size, first = locate(cls, module, params, in_arg)
    if isinstance(first, torch.Tensor) and first.ndim == 2:
        raise classifier_error(cls, params, first)
    result = {"class": cls.__name__, "ok": True, "params": params, "in_arg": in_arg, "out_arg": out_arg,
              "layout": layout, "image_channels": c, **measure(module, layout, c, {size: first})}
    if result["role"] == "layer":
        if in_arg is None:
            probe_none(module, layout, size, first)
        result.update(channel_rule(cls, first, sets, in_arg, out_arg, layout, size))
    return result


# ------------------------------------------------------------------ main


def probe_one(request: dict, item: dict) -> dict:
    try:
        module = load_module(request, item.get("module"))
    except Exception as exc:
        return {"class": item["class"], "ok": False, "error": f"importing the source failed: {one_line(exc)}",
                "traceback": traceback.format_exc()[-3000:]}
    try:
        cls = getattr(module, item["class"])
    except AttributeError:
        return {"class": item["class"], "ok": False, "error": f"no class {item['class']} in the source"}
    try:
        return probe_class(cls, item.get("sets") or {})
    except ProbeError as exc:
        return {"class": item["class"], "ok": False, "error": str(exc)}
    except Exception as exc:
        return {"class": item["class"], "ok": False, "error": one_line(exc), "traceback": traceback.format_exc()[-3000:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("request", help="JSON file: {root, file, probes: [{class, module, sets}]}")
    args = parser.parse_args(argv)
    request = json.loads(Path(args.request).read_text(encoding="utf-8"))
    json_out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)  # the user's prints (even from C code) go to stderr
    sys.stdout = sys.stderr
    import torch

    torch.set_num_threads(1)  # tiny tensors: thread start-up would cost more than it saves
    with contextlib.suppress(Exception):
        torch.manual_seed(0)
    json_out.write(json.dumps({"ready": True}) + "\n")  # torch imported: the per-class timeouts start now
    json_out.flush()
    for item in request["probes"]:
        json_out.write(json.dumps(probe_one(request, item), default=str) + "\n")
        json_out.flush()
    json_out.write(json.dumps({"done": True}) + "\n")
    json_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
