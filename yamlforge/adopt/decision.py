"""adopt's decisions: what a probed class's JSON means for its spec (channel rule, arguments, adapter or not)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction


@dataclass(frozen=True)
class SpecArg:
    """One YAML argument after the channel arguments; ``value`` is what the YAML row passes (None: omitted)."""

    name: str
    default: object
    value: object = None
    given: bool = False
    origin: str | None = None  # file:line of the call in the source the default was proposed from


@dataclass(frozen=True)
class Decision:
    """What probing decided for one class, in the terms a spec uses."""

    class_name: str
    role: str  # layer | backbone
    rule: str  # keep | in_out | equal (an (inp, oup) class given the width twice) | none | ratio | backbone
    layout: str  # nchw | nhwc | tokens | tokens_hw | tokens_size
    stride: Fraction
    multiple: int
    in_arg: str | None
    out_arg: str | None
    args: tuple[SpecArg, ...]
    fixed: dict  # constructor values the adapter passes by keyword (--set values the YAML cannot carry)
    outputs: tuple[tuple[int, Fraction], ...] = ()  # backbone: (channels, stride) per output
    ratio: Fraction = Fraction(1)
    sizes: tuple[int, ...] = ()  # map sides the class ran at
    adapter_reasons: tuple[str, ...] = ()
    constraints: dict = field(default_factory=dict)  # what the widths must meet: multiple, power_of_two, relations
    derived: dict = field(default_factory=dict)  # constructor argument -> its ratio to the input width
    proposed: tuple[str, ...] = ()  # ``qk_dim = 16 (net.py:31)``: values read from a call of the class in the source

    @property
    def needs_adapter(self) -> bool:
        return bool(self.adapter_reasons)


LAYOUT_REASONS = {
    "nhwc": "its forward takes (N, H, W, C) maps: the adapter permutes from and back to NCHW",
    "tokens": "its forward takes (N, L, C) tokens: the adapter flattens the map and folds the tokens back",
    "tokens_hw": "its forward takes (N, L, C) tokens and H, W: the adapter flattens the map and folds it back",
    "tokens_size": "its forward takes (N, L, C) tokens and (H, W): the adapter flattens the map and folds it back",
}


def _positional(raw: dict) -> list[dict]:
    return [p for p in raw["params"] if p["kind"] == "POSITIONAL_OR_KEYWORD"]


def _channel_names(raw: dict) -> list[str]:
    """The constructor arguments parse_model fills in: none, the input width, or input and output widths."""
    if raw["role"] == "backbone" or raw["rule"] == "none":
        return [raw["in_arg"]] if raw["in_arg"] else []
    return [raw["in_arg"], raw["out_arg"]] if raw["rule"] in ("in_out", "equal") else [raw["in_arg"]]


def _yaml_reachable(raw: dict, sets: dict) -> list[dict]:
    """Positional arguments after the channel ones that a YAML row can pass: up to the first default YAML cannot
    write (``act_layer=nn.GELU``) that is not --set."""
    channel = _channel_names(raw)
    reachable = []
    for param in _positional(raw):
        if param["name"] in channel or param["name"] in raw.get("derived", {}):
            continue
        if "repr" in param and param["name"] not in sets:
            break
        reachable.append(param)
    return reachable


def _ready_backbone(raw: dict) -> bool:
    """A backbone parse_model can build as it is: a width_list and the image channels as first argument."""
    first = next(iter(_positional(raw)), {"name": None})["name"]
    return bool(raw.get("width_list")) and raw["in_arg"] == first


def _adapter_reasons(raw: dict, sets: dict) -> list[str]:
    """Why the YAML cannot use the class as it is (empty: no adapter)."""
    reasons = []
    channel = _channel_names(raw)
    if raw["role"] == "backbone" and not _ready_backbone(raw):
        reasons.append("a backbone: the adapter gives the image channels to "
                       f"{raw['in_arg'] or 'no argument (the class takes 3)'} "
                       "and lists the output widths in width_list")
    if raw["layout"] != "nchw":
        reasons.append(LAYOUT_REASONS[raw["layout"]])
    if raw["multiple"] > 1:
        reasons.append(f"map sides must be multiples of {raw['multiple']}: the adapter pads them and crops the output")
    if [p["name"] for p in _positional(raw)][:len(channel)] != channel:
        reasons.append(f"{', '.join(channel)} must be the first constructor argument(s) for parse_model")
    unreachable = sorted(set(sets) - {p["name"] for p in _yaml_reachable(raw, sets)})
    if unreachable:
        reasons.append(f"the YAML row cannot pass {', '.join(unreachable)}: the adapter fixes it")
    reasons += [f"{name} is derived from the width ({relation(name, ratio, 'c1')}): the adapter computes it"
                for name, ratio in raw.get("derived", {}).items()]
    return reasons


def relation(name: str, ratio, width: str) -> str:
    """``hidden = 2 * c1`` for a derived argument with ratio [2, 1]."""
    ratio = Fraction(*ratio)
    times = "" if ratio.numerator == 1 else f"{ratio.numerator} * "
    return f"{name} = {times}{width}" + (f" // {ratio.denominator}" if ratio.denominator > 1 else "")


def _tied_reason(raw: dict, name: str, value) -> str:
    width = value / Fraction(*raw["derived"][name])
    return f"--set {name}={value} runs only at {raw['in_arg']}={width}: {name} follows the width instead"


def _constraints(raw: dict) -> dict:
    """The spec's ``constraints``: the runner's learnt ones, and the derived arguments as relations."""
    found = dict(raw.get("constraints") or {})
    relations = [relation(name, ratio, raw["in_arg"]) for name, ratio in raw.get("derived", {}).items()]
    if relations:
        found["relations"] = relations
    return found


def _spec_args(raw: dict, sets: dict, adapter: bool, proposed: dict) -> tuple[SpecArg, ...]:
    """The spec's args; with an adapter the --set values live in the adapter, not in the YAML row. A --set value, or
    one ``proposed`` from a call in the source (name -> file:line), is the spec's default."""
    args = []
    for param in _yaml_reachable(raw, sets):
        name = param["name"]
        if adapter and name in sets:
            continue
        default = sets[name] if name in sets else param.get("value")
        args.append(SpecArg(name, default, sets.get(name, default), given=name in sets and name not in proposed,
                            origin=proposed.get(name)))
    return tuple(args)


def decide(raw: dict, sets: dict, proposed: dict | None = None) -> Decision:
    """The spec-level decisions for one probed class (``raw``: the runner's JSON, ``ok`` true); ``proposed``:
    argument -> file:line of the call its value in ``sets`` was read from. A --set value the probe tied to the width
    (``derived``) becomes that relation."""
    tied = [_tied_reason(raw, name, sets[name]) for name in raw.get("derived", {}) if name in sets]
    sets = {name: value for name, value in sets.items() if name not in raw.get("derived", {})}
    reasons = tuple(tied + _adapter_reasons(raw, sets))
    args = _spec_args(raw, sets, bool(reasons), proposed or {})
    kept = {a.name for a in args}
    rule = "backbone" if raw["role"] == "backbone" else raw["rule"]
    if rule == "equal" and reasons:
        rule = "keep"  # the adapter takes the width once and passes it as both (inp, oup)
    ratio = Fraction(*raw.get("ratio", (1, 1)))
    outputs = tuple((o["channels"], Fraction(o["stride"])) for o in raw.get("outputs", ()))
    return Decision(class_name=raw["class"], role=raw["role"], rule=rule, layout=raw["layout"],
                    stride=Fraction(raw.get("stride", "1")), multiple=raw["multiple"], in_arg=raw["in_arg"],
                    out_arg=raw["out_arg"] if raw.get("rule") in ("in_out", "equal") else None, args=args,
                    fixed={k: v for k, v in sets.items() if k not in kept}, outputs=outputs, ratio=ratio,
                    sizes=tuple(raw["sizes"]), adapter_reasons=reasons, constraints=_constraints(raw),
                    derived={k: Fraction(*v) for k, v in raw.get("derived", {}).items()})
