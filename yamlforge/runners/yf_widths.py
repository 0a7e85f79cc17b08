"""Searches the channel widths an adopted module builds and runs at, and learns the constraint its failures show.

Runs in the target's Python (adopt's probe). A detector's widths are multiples of 16 to 64, and powers of two at
the n/s scales, so a block that splits its channels into 32 groups fails at 48 yet plugs in: the probe tries
several widths instead of one guess, and reports what they must satisfy (``multiple``, ``power_of_two``) and
the constructor arguments it derived from the width (``hidden = 2 * inp``).
"""

from __future__ import annotations

import math
from fractions import Fraction

if __package__:  # imported as yamlforge.runners.yf_widths (the tests)
    from . import yf_facts
    from . import yf_probe as probe
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts
    import yf_probe as probe

C_IN, C_OUT = 32, 48  # distinct from every probed map size, so NCHW and NHWC cannot be confused
# (input, output) widths tried in turn for the first build: the usual pair, then equal widths, then wider ones
FIRST_PAIRS = ((C_IN, C_OUT), (C_IN, C_IN), (64, 96), (64, 64), (128, 128), (256, 256))
SECOND_WIDTHS = (C_OUT, 64, 96, 128, 256)  # the rule's second build: the first that runs
CANDIDATES = (16, 24, 32, 48, 64, 96, 128, 192, 256)  # what the constraint is learnt from
DERIVED_RATIOS = (Fraction(1), Fraction(2), Fraction(4), Fraction(1, 2), Fraction(1, 4))
WIDTH_WORDS = ("dim", "hidden", "ch", "planes", "width", "features", "inp", "oup", "mid")


class Builder:
    """Builds ``cls`` at channel widths: ``sets`` as given, each ``derived`` argument as the input width times its
    ratio; ``failed`` records whether some width did not build or run (a constraint to learn)."""

    def __init__(self, cls, sets: dict, in_arg: str | None, out_arg: str | None, derived: dict | None = None):
        self.cls, self.sets, self.in_arg, self.out_arg = cls, sets, in_arg, out_arg
        self.derived = derived or {}
        self.failed = False

    def kwargs(self, c_in: int, c_out: int) -> dict:
        kwargs = dict(self.sets)
        kwargs.update({name: int(c_in * ratio) for name, ratio in self.derived.items()})
        if self.in_arg:
            kwargs[self.in_arg] = c_in
        if self.out_arg:
            kwargs[self.out_arg] = c_out
        return kwargs

    def __call__(self, c_in: int, c_out: int):
        kwargs = self.kwargs(c_in, c_out)
        try:
            return self.cls(**kwargs).eval()
        except Exception as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            raise probe.ProbeError(f"{self.cls.__name__}({shown}) failed: {yf_facts.one_line(exc)}") from None

    def output(self, layout: str, size: int, c_in: int, c_out: int):
        """The output of a build at (c_in, c_out) fed at ``size``; None when it does not build or run."""
        try:
            return probe.run(self(c_in, c_out), layout, c_in, size)
        except Exception:
            self.failed = True
            return None


def first_pairs(builder: Builder) -> tuple[tuple[int, int], ...]:
    """The (input, output) widths tried for the first build; last, the widths a width-like --set value is a multiple
    of (``--set hidden_dim=96``: 96, 48, ...), where a block tied to its width runs (see tie_to_width)."""
    in_arg, out_arg = builder.in_arg, builder.out_arg
    if out_arg:
        pairs = FIRST_PAIRS
    elif in_arg:
        pairs = tuple(dict.fromkeys((c, C_OUT if c == C_IN else c) for c, _ in FIRST_PAIRS))
    else:
        return FIRST_PAIRS[:1]
    tied = [value / ratio for value in _width_values(builder.sets) for ratio in DERIVED_RATIOS]
    return tuple(dict.fromkeys([*pairs, *((int(w), int(w)) for w in tied if w.denominator == 1 and w >= 8)]))


def _width_values(sets: dict) -> list[int]:
    """The --set values of width-like arguments (``hidden_dim=128``)."""
    return [value for name, value in sets.items() if type(value) is int and value > 0
            and any(word in name.lower() for word in WIDTH_WORDS)]


def derive(cls, sets: dict, missing: list[str], in_arg: str | None, out_arg: str | None) -> dict:
    """Width-like required arguments no --set gives: the first ratio to the input width at which the class builds
    at two widths (``hidden == 2 * inp`` asserted builds at 2); {} when an argument is not width-like or none do."""
    if not in_arg or not all(any(word in name.lower() for word in WIDTH_WORDS) for name in missing):
        return {}
    for ratio in DERIVED_RATIOS:
        builder = Builder(cls, sets, in_arg, out_arg, {name: ratio for name in missing})
        try:
            builder(64, 64), builder(128, 128)
        except probe.ProbeError:
            continue
        return builder.derived
    return {}


def tie_to_width(builder: Builder, layout: str, size: int, c_in: int) -> None:
    """A width-like --set value that is a fixed multiple of ``c_in``, the one width the class runs at with it, is
    derived from the width instead when that makes the class run at two other widths (``--set hidden_dim=128`` at
    inp=64: ``hidden_dim = 2 * inp``). A value the class also runs with at another width stays as given."""
    tied = [name for name, value in builder.sets.items()
            if value in _width_values({name: value}) and Fraction(value, c_in) in DERIVED_RATIOS]
    if not (builder.failed and builder.in_arg and tied):
        return
    others = [w for w in SECOND_WIDTHS if w != c_in]
    if any(builder.output(layout, size, w, w) is not None for w in others):
        return
    for name in tied:
        sets = {key: value for key, value in builder.sets.items() if key != name}
        trial = Builder(builder.cls, sets, builder.in_arg, builder.out_arg,
                        {**builder.derived, name: Fraction(builder.sets[name], c_in)})
        if sum(trial.output(layout, size, w, w) is not None for w in others) >= 2:
            builder.sets, builder.derived = trial.sets, trial.derived
            return


def second_width(builder: Builder, layout: str, size: int, c_in: int):
    """(width, output) of the rule's second build: the first of SECOND_WIDTHS other than ``c_in`` that runs."""
    for width in SECOND_WIDTHS:
        if width == c_in:
            continue
        out = builder.output(layout, size, width, width)
        if out is not None:
            return width, out
    raise probe.ProbeError(f"builds and runs only at {builder.in_arg}={c_in}: tried "
                           f"{', '.join(str(w) for w in SECOND_WIDTHS if w != c_in)}")


def learn(builder: Builder, layout: str, size: int) -> dict:
    """The constraint widths must meet, from builds at CANDIDATES: ``{"multiple": m}``, ``{"power_of_two": true}``,
    or {} when every candidate runs."""
    good = [w for w in CANDIDATES if builder.output(layout, size, w, w) is not None]
    bad = [w for w in CANDIDATES if w not in good]
    if not bad:
        return {}
    if not good:
        raise probe.ProbeError(f"builds at no width of {list(CANDIDATES)}")
    common = math.gcd(*good)
    if all(w % common for w in bad):
        return {"multiple": common}
    if all(w & (w - 1) == 0 for w in good) and all(w & (w - 1) for w in bad):
        return {"power_of_two": True}
    raise probe.ProbeError(f"runs at widths {good} but not {bad}; no multiple or power of two explains it")
