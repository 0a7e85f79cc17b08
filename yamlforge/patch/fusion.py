"""Fusion variants: a channel-keeping module inserted into the target's own host blocks (``RepC3_SHSA`` ...).

A fusion is a generated class ``<Host>_<Module>`` that subclasses the target's host class (imported from the
target, so it follows that version's code), calls the host's ``__init__`` with the host's own signature (read
from the target's source), then inserts the module at one placement. The code comes from
``templates/fuse/file.py.j2`` plus one small template per host holding the insertion statements.

Where generated classes live: one file per fusion next to the modules yamlforge places, named
``fused_<host>_<module>.py`` (Ultralytics: ``ultralytics/nn/modules/``, so ``ULTRALYTICS_SAFE_LOAD`` checkpoints
load; YOLOv9: ``models/yamlforge/``, exported by the package ``__init__``). parse_model registration gives the
class its host's rule (:class:`yamlforge.patch.codemods.registration.JoinHostConditions`).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import YamlforgeError, command_line
from ..resources import render
from ..specs import REQUIRED, ModuleSpec
from ..targets import Target
from ..textfile import read_text

ALL = "all"
FILE_TEMPLATE = "fuse/file.py.j2"
# Names a default value of a host signature may use: the generated file imports ``nn`` from torch.
DEFAULT_NAMES = frozenset({"nn"})


@dataclass(frozen=True)
class Placement:
    """Where in a host the module goes: ``inner`` (the default) or ``output``."""

    name: str
    summary: str  # "after each inner bottleneck", completes "C2f with SHSA ..."
    channels: str  # the constructor argument the module gets, as the host's code names it
    detail: str  # one paragraph for the generated docstring


@dataclass(frozen=True)
class Host:
    """A block a module can be fused into: which targets have it and how the insertion is written."""

    name: str
    template: str  # under templates/fuse/
    kinds: tuple[str, ...]  # target kinds defining it
    available: str  # which releases have it, for the error when the target lacks it
    placements: tuple[Placement, ...]  # the first is the default
    needs: tuple[str, ...]  # __init__ parameters the templates use by name

    def placement(self, name: str | None) -> Placement:
        if name is None:
            return self.placements[0]
        for placement in self.placements:
            if placement.name == name:
                return placement
        known = ", ".join(p.name for p in self.placements)
        raise YamlforgeError(f"unknown placement '{name}' for {self.name} (known: {known})", where="--fuse-at")


def _output(conv: str) -> Placement:
    return Placement(
        "output",
        f"after the aggregation conv {conv}",
        "c2",
        f"{conv} becomes Sequential({conv}, module): the module refines the block's output at c2 channels.",
    )


_C2F_INNER = Placement(
    "inner",
    "after each inner bottleneck",
    "self.c",
    "Each block of self.m becomes Sequential(block, module) at the hidden width self.c = int(c2 * e), so the "
    "module sees every intermediate feature that is concatenated before cv2.",
)

HOSTS: tuple[Host, ...] = (
    Host("C2f", "c2f.py.j2", ("ultralytics",), "every Ultralytics release (8.0 and later)",
         (_C2F_INNER, _output("cv2")), ("c2",)),
    Host("C3k2", "c2f.py.j2", ("ultralytics",), "Ultralytics 8.3.0 and later",
         (_C2F_INNER, _output("cv2")), ("c2",)),
    Host("RepC3", "repc3.py.j2", ("ultralytics",), "every Ultralytics release (8.0 and later)", (
        Placement("inner", "after each RepConv", "c_",
                  "Each RepConv of self.m becomes Sequential(RepConv, module) at the hidden width c_ = int(c2 * e)."),
        _output("cv3"),
    ), ("c2", "e")),
    Host("HGBlock", "hgblock.py.j2", ("ultralytics",), "every Ultralytics release (8.0 and later)", (
        Placement("inner", "after each inner conv", "cm",
                  "Each Conv/LightConv of self.m becomes Sequential(conv, module) at the middle width cm, so every "
                  "feature the squeeze conv aggregates has passed through the module."),
        _output("ec"),
    ), ("cm", "c2")),
    Host("RepNCSPELAN4", "repncspelan4.py.j2", ("ultralytics", "yolov9"),
         "Ultralytics 8.1.0 and later, and YOLOv9", (
             Placement("inner", "after each RepCSP branch", "c4",
                       "The branches cv2 and cv3 (RepCSP, Conv) get the module appended at c4 channels: two "
                       "instances, whose outputs are concatenated before cv4."),
             _output("cv4"),
         ), ("c4", "c2")),
    Host("C3", "c3.py.j2", ("yolov5",), "YOLOv5", (
        Placement("inner", "after each inner bottleneck", "c_",
                  "Each Bottleneck of self.m becomes Sequential(Bottleneck, module) at the hidden width "
                  "c_ = int(c2 * e), before the concatenation with cv2's branch."),
        _output("cv3"),
    ), ("c2", "e")),
)

# Blocks users ask to fuse into that are no class in the target: why not, per (kind, host).
WRITTEN_OUT = {
    ("yolov7", "ELAN"): "YOLOv7's ELAN and E-ELAN blocks are no class: the model YAML writes each one out as its "
                        "Conv and Concat layers",
}


@dataclass(frozen=True)
class Fusion:
    """One requested fusion: ``module`` (a class exported by spec ``spec``) inserted into ``host`` at ``at``."""

    host: str
    module: str
    spec: str
    at: str

    @property
    def name(self) -> str:
        return f"{self.host}_{self.module}"

    @property
    def file_stem(self) -> str:
        return f"fused_{self.host.lower()}_{self.module.lower()}"


def hosts_for(kind: str) -> list[Host]:
    return [h for h in HOSTS if kind in h.kinds]


def host_named(name: str, kind: str) -> Host:
    for host in hosts_for(kind):
        if host.name == name:
            return host
    written_out = WRITTEN_OUT.get((kind, name.upper().removeprefix("E-")))  # ELAN, E-ELAN
    if written_out:
        raise YamlforgeError(f"'{name}' cannot be fused: {written_out}",
                             where="--fuse", hint="insert the module between those layers instead: yamlforge "
                             "gen-yaml BASE --insert-after N=MODULE (N: the block's Concat or output Conv)")
    elsewhere = [h for h in HOSTS if h.name == name]
    known = ", ".join(h.name for h in hosts_for(kind))
    if elsewhere:
        raise YamlforgeError(f"host '{name}' cannot be fused on {kind} targets; it is in {elsewhere[0].available}",
                             where="--fuse", hint=f"hosts on {kind}: {known}")
    raise YamlforgeError(f"unknown fusion host '{name}' (known on {kind}: {known}, or all)", where="--fuse")


def required_args(spec: ModuleSpec) -> list[str]:
    """The spec's arguments without a default: a host cannot give them, so such a module is not fusable."""
    return [arg.name for arg in spec.args if arg.default is REQUIRED]


def fusable(spec: ModuleSpec) -> bool:
    """A channel-keeping layer a host can build from the width alone (what ``fused_class`` accepts)."""
    return spec.role == "layer" and spec.channels == "keep" and not required_args(spec)


def fused_class(spec: ModuleSpec) -> str:
    """The class of a keep-channel spec that goes into hosts; any other spec is refused."""
    if spec.role != "layer" or spec.channels != "keep":
        raise YamlforgeError(
            f"'{spec.name}' cannot be fused: only channel-keeping modules (channels: keep) fit inside a host "
            f"block, and {spec.name} is {spec.channels}", where="--module",
            hint="yamlforge list  # the 'channels' column shows which modules keep their width",
        )
    if required_args(spec):  # ResidualWrap: the module it wraps
        raise YamlforgeError(f"'{spec.name}' cannot be fused: a host builds its inner block from the width alone, "
                             f"and {spec.name} also needs {', '.join(required_args(spec))}", where="--module")
    if spec.name in spec.exports:
        return spec.name
    if len(spec.exports) == 1:
        return spec.exports[0]
    raise YamlforgeError(f"'{spec.name}' exports several classes ({', '.join(spec.exports)}); name one with --module",
                         where="--module")


# ----------------------------------------------------------------------------- the host's own code


def _host_class(target: Target, host: Host, read: Callable[[str], str | None]) -> ast.ClassDef:
    """The host's ``class`` node in the target, or an error naming the releases that have it."""
    rel = target.kind.blocks_file
    text = read(rel)
    tree = ast.parse(text) if text is not None else None
    found = tree and next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == host.name), None)
    if not found:
        raise YamlforgeError(f"host '{host.name}' does not exist in {target.label} ({rel}); it is in {host.available}",
                             where="--fuse", hint="upgrade the checkout, or fuse into another host")
    return found


@dataclass(frozen=True)
class Parameter:
    """One parameter of the host's ``__init__`` as written there (``default`` is source text, or None)."""

    name: str
    default: str | None = None
    # the default calls something (8.0's ``act=nn.ReLU()``): the same object is shared, as in the host
    calls: bool = False


def host_parameters(target: Target, host: Host, read: Callable[[str], str | None]) -> list[Parameter]:
    """The host's ``__init__`` parameters (after ``self``), without annotations, defaults as written."""
    cls = _host_class(target, host, read)
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    where = f"{target.kind.blocks_file}:{cls.lineno}"
    if init is None:
        raise YamlforgeError(f"host '{host.name}' defines no __init__ in {target.label}", where=where)
    args = init.args
    if args.vararg or args.kwarg or args.kwonlyargs:  # none of the hosts has them; the template passes positionally
        raise YamlforgeError(f"{host.name}.__init__ in {target.label} takes *args, **kwargs or keyword-only "
                             "parameters, which the fusion template does not pass on", where=where)
    positional = [*args.posonlyargs, *args.args][1:]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = [
        Parameter(a.arg, _default(d, host, where), d is not None and any(isinstance(n, ast.Call) for n in ast.walk(d)))
        for a, d in zip(positional, defaults)
    ]
    missing = [n for n in host.needs if n not in {p.name for p in params}]
    if missing:
        raise YamlforgeError(f"{host.name}.__init__ in {target.label} has no parameter '{missing[0]}', which the "
                             f"fusion template uses", where=where, hint="fuse into another host on this version")
    return params


def _default(node: ast.expr | None, host: Host, where: str) -> str | None:
    if node is None:
        return None
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - DEFAULT_NAMES
    if names:
        raise YamlforgeError(f"{host.name}.__init__ has a default using '{min(names)}', which a generated "
                             "subclass cannot repeat", where=where)
    return ast.unparse(node)


# ----------------------------------------------------------------------------- requests and generated code


def resolve_fusions(target: Target, specs: Iterable[ModuleSpec], hosts: Iterable[str], at: str | None,
                    read: Callable[[str], str | None]) -> list[Fusion]:
    """Every (module, host) pair asked for, validated against the target; ``all`` means every host it has."""
    specs, hosts = list(specs), list(hosts)
    if not hosts:
        if at is not None:
            raise YamlforgeError("--fuse-at needs --fuse HOST", where="--fuse-at")
        return []
    if not specs:
        raise YamlforgeError("--fuse needs the module to fuse", where="--module",
                             hint=command_line("yamlforge", "apply", "--repo", target.root, "--module", "SHSA",
                                               "--fuse", hosts[0]))
    kind = target.kind.name
    if ALL in hosts:
        chosen = _every_host(target, read)
    else:
        chosen = [host_named(name, kind) for name in dict.fromkeys(hosts)]
    fusions = []
    for spec in specs:
        module = fused_class(spec)
        for host in chosen:
            _host_class(target, host, read)
            fusions.append(Fusion(host.name, module, spec.name, host.placement(at).name))
    return fusions


def _every_host(target: Target, read: Callable[[str], str | None]) -> list[Host]:
    """``--fuse all``: the hosts the checkout defines, or an error saying why it has none."""
    chosen = [h for h in hosts_for(target.kind.name) if _has_class(target, h, read)]
    if not chosen:
        why = "; ".join(reason for (owner, _), reason in WRITTEN_OUT.items() if owner == target.kind.name)
        raise YamlforgeError(f"{target.label} has no host block to fuse into" + (f": {why}" if why else ""),
                             where="--fuse", hint="add the module as a layer: yamlforge gen-yaml --insert-after")
    return chosen


def _has_class(target: Target, host: Host, read: Callable[[str], str | None]) -> bool:
    try:
        _host_class(target, host, read)
    except YamlforgeError:
        return False
    return True


def render_fusion(target: Target, fusion: Fusion, spec: ModuleSpec, read: Callable[[str], str | None]) -> str:
    """The module file of ``fusion`` for ``target`` (same inputs, same bytes)."""
    host = host_named(fusion.host, target.kind.name)
    return render(
        FILE_TEMPLATE,
        fusion=fusion,
        host=host,
        placement=host.placement(fusion.at),
        params=host_parameters(target, host, read),
        host_import=target.blocks_module,
        module_import=target.import_module(spec.file_stem),
        paper=spec.paper,
    )


def disk_reader(target: Target) -> Callable[[str], str | None]:
    """Read a checkout file relative to its root (None when missing)."""

    def read(rel: str) -> str | None:
        path = target.root / rel
        return read_text(path) if path.is_file() else None

    return read




# ----------------------------------------------------------------------------- `yamlforge show NAME --fuse HOST`

SHOW_TARGET = ("ultralytics", "8.4.190")  # whose host classes `show --fuse` subclasses when no --repo is given


def preview_fusions(spec: ModuleSpec, hosts: Iterable[str], at: str | None, target: Target | None = None
                    ) -> list[tuple[Fusion, str]]:
    """Each generated fusion file of ``spec`` into ``hosts``, read-only: nothing in any checkout changes.

    Without ``target``, the host classes are those of Ultralytics 8.4.190 (:data:`SHOW_TARGET`), read from
    yamlforge's pristine cached checkout (built from the PyPI wheel on first use).
    """
    if target is None:
        from ..scratch import pristine_checkout
        from ..targets import detect_target

        target = detect_target(pristine_checkout(*SHOW_TARGET))
    read = disk_reader(target)
    return [(f, render_fusion(target, f, spec, read)) for f in resolve_fusions(target, [spec], hosts, at, read)]


__all__ = ["ALL", "HOSTS", "SHOW_TARGET", "Fusion", "Host", "Placement", "fused_class", "host_parameters",
           "hosts_for", "preview_fusions", "render_fusion", "resolve_fusions"]
