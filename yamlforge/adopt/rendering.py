"""adopt's output text: the adapter class and the spec (``templates/adopt/``), the YAML row, a survey's summary."""

from __future__ import annotations

import json
from fractions import Fraction

from ..resources import render
from .decision import Decision, relation

YAML_OUT_WIDTH = 256  # the output width shown in an in_out module's YAML row
CHANNEL_PARAMS = {"keep": ("c1",), "ratio": ("c1",), "in_out": ("c1", "c2"), "equal": ("c1",), "none": (),
                  "backbone": ("c1=3",)}  # the adapter's channel parameters, by channel rule


def summary(decision: Decision) -> str:
    """One table cell: ``keep, nchw, stride 1/2, pad to 7`` or ``backbone: 64@4, 128@8``."""
    if decision.role == "backbone":
        return "backbone: " + ", ".join(f"{c}@{s}" for c, s in decision.outputs)
    rule = f"x{decision.ratio}" if decision.rule == "ratio" else decision.rule
    pad = f", pad to {decision.multiple}" if decision.multiple > 1 else ""
    width = decision.constraints.get("multiple")
    width = f", widths multiples of {width}" if width else \
        (", widths powers of two" if decision.constraints.get("power_of_two") else "")
    return f"{rule}, {decision.layout}, stride {decision.stride}{pad}{width}"


def _adapter_signature(d: Decision) -> tuple[str, str]:
    """(the adapter's parameters after self, the keyword arguments it passes to the class) as Python text."""
    params = [*CHANNEL_PARAMS[d.rule], *(f"{a.name}={a.default!r}" for a in d.args)]
    channels = [(d.in_arg, "c1"), (d.out_arg, "c2" if d.rule == "in_out" else "c1")]
    call = [f"{arg}={value}" for arg, value in channels if arg and d.rule != "none"]
    call += [relation(name, (r.numerator, r.denominator), "c1").replace(" = ", "=") for name, r in d.derived.items()]
    call += [f"{a.name}={a.name}" for a in d.args] + [f"{k}={v!r}" for k, v in d.fixed.items()]
    return "".join(f", {p}" for p in params), ", ".join(call)


def _crop(stride: Fraction):
    """The output side for an input side named ``side``: ``side`` at stride 1, ``-(-side // 2)`` at stride 2."""
    def crop(side: str) -> str:
        if stride == 1:
            return side
        scaled = side if stride.denominator == 1 else f"{side} * {stride.denominator}"
        return scaled if stride.numerator == 1 else f"-(-{scaled} // {stride.numerator})"
    return crop


def render_adapter(d: Decision, name: str, *, original: str | None = None, import_from: str | None = None) -> str:
    """The adapter class ``name`` (after ``original``, the source text, or importing the class ``import_from``)."""
    params, call = _adapter_signature(d)
    size = next((s for s in d.sizes if s >= 32), max(d.sizes))
    return render("adopt/adapter.py.j2", original=original and original.rstrip("\n"), import_from=import_from,
                  name=name, d=d, params=params, call=call, size=size, crop=_crop(d.stride))


def render_rename(d: Decision, name: str, *, original: str | None = None, import_from: str | None = None) -> str:
    """``class name(d.class_name)``: the class under a name the target does not have (after ``original``, or
    importing the class ``import_from``)."""
    return render("adopt/rename.py.j2", original=original and original.rstrip("\n"), import_from=import_from,
                  name=name, d=d)


def render_spec(d: Decision, *, name: str, export: str, origin: str, source: str, entry: str | None,
                requires: list[str], renamed: str | None = None) -> str:
    return render("adopt/spec.yaml.j2", d=d, name=name, export=export, origin=origin, source=source, entry=entry,
                  requires=[json.dumps(r) for r in requires], probed=summary(d), json=json.dumps, renamed=renamed)


def yaml_row(d: Decision, export: str) -> str:
    """The model-YAML row that uses the adopted module, with the args the --set values need."""
    from ..modelyaml.edits import yaml_text

    if d.role == "backbone":
        return (f"- [-1, 1, {export}, []]  # takes {len(d.outputs)} index slots: outputs at strides "
                + ", ".join(str(s) for _, s in d.outputs))
    given = [i for i, a in enumerate(d.args) if a.given]
    values = [yaml_text(a.value) for a in d.args[:given[-1] + 1]] if given else []
    if d.rule == "in_out":
        values.insert(0, str(YAML_OUT_WIDTH))
    return f"- [-1, 1, {export}, [{', '.join(values)}]]"
