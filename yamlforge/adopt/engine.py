"""``yamlforge adopt``: probes a paper's module in the target's Python and writes a spec (and an adapter) for it.

Data flows one way: :func:`adopt_source.load_source` reads the code (never runs it) → :func:`probe` runs
``adopt_runner.py`` in a subprocess of the target's Python with a timeout and returns its JSON per class →
:func:`decide` turns that into a :class:`Decision` → :func:`plan_files` renders the spec, the module file(s)
and, only where the YAML cannot use the class as it is, an adapter (``templates/adopt/``) → :func:`adopt`
validates everything and writes it all or nothing. User code never runs in this process.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import queue
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from ..errors import YamlforgeError
from ..patch.changeset import Changeset
from ..patch.writer import write_changeset
from ..resources import render
from ..target_python import RUNNERS, resolve_python, runner_env
from . import gitsource
from . import source as adopt_source

RUNNER = RUNNERS / "adopt_runner.py"
TIMEOUT = 60  # seconds for one class: its import and a few small forwards; a hang ends here
TIMEOUT_ENV = "YAMLFORGE_ADOPT_TIMEOUT"  # overrides TIMEOUT: a module that is slow on small inputs, or a test
STARTUP_TIMEOUT = 120  # seconds for the target's Python to import torch (slow on a loaded machine)
PACKAGE_ALIAS = "_yamlforge_adopted"  # the private name a probed package is imported under
ADAPTER_SUFFIX = "Adapted"
YAML_OUT_WIDTH = 256  # the output width shown in an in_out module's YAML row
NOT_A_MODULE = "is not a torch.nn.Module subclass"  # the runner's answer for a proposed class that is not one


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


@dataclass(frozen=True)
class ClassReport:
    """One nn.Module class of the source and what probing found (``error`` when it cannot be adopted)."""

    name: str
    where: str
    decision: Decision | None = None
    error: str | None = None


@dataclass
class AdoptResult:
    """The written spec, the YAML row to use and the apply command; ``files`` maps each written path to its text."""

    name: str
    decision: Decision
    spec_path: Path
    yaml_row: str
    apply_command: str
    files: dict[Path, str] = field(default_factory=dict)
    statuses: dict[Path, str] = field(default_factory=dict)  # create | identical, per written path
    notes: list[str] = field(default_factory=list)


def split_source(text: str) -> tuple[str, str | None]:
    """``blocks.py::Block`` → (``blocks.py``, ``Block``); without ``::`` the class is None (a survey)."""
    path, sep, class_name = text.rpartition("::")
    if not sep:
        return text, None
    if not path or not class_name.isidentifier():
        raise YamlforgeError(f"'{text}' is not SOURCE::CLASS", where="SOURCE", hint="e.g. blocks.py::ChannelGate")
    return path, class_name


def probe_timeout() -> float:
    """Seconds one class may take: :data:`TIMEOUT`, or the number in ``$YAMLFORGE_ADOPT_TIMEOUT``."""
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        return float(text) if text else TIMEOUT
    except ValueError:
        raise YamlforgeError(f"{TIMEOUT_ENV}={text!r} is not a number of seconds", where=TIMEOUT_ENV) from None


# ------------------------------------------------------------------ --set values


def parse_sets(pairs: list[str] | tuple[str, ...]) -> dict:
    """``["fork_feat=True", "widths=[8, 16]"]`` → values as Python literals (YAML's true/false/null too)."""
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise YamlforgeError(f"--set '{pair}' is not KEY=VALUE", where="--set", hint="e.g. --set fork_feat=True")
        text = text.strip()
        lowered = {"true": "True", "false": "False", "null": "None", "none": "None"}.get(text.lower(), text)
        try:
            values[key] = ast.literal_eval(lowered)
        except (ValueError, SyntaxError):
            values[key] = text  # a bare word: a string argument such as an activation name
    return values


# ------------------------------------------------------------------ probing


def _materialise(source: adopt_source.Source, folder: Path) -> dict:
    """The runner's view of the source: a single file as it is, a package copied with relative imports."""
    if not source.is_package:
        return {"root": None, "file": str(source.root / source.entry)}
    package = folder / PACKAGE_ALIAS
    files = {**source.files, **adopt_source.relativize_imports(source)}
    for rel, text in files.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text, encoding="utf-8")
    (package / "__init__.py").touch()
    return {"root": str(folder), "file": None}


def _module_name(source: adopt_source.Source, rel: str) -> str | None:
    if not source.is_package:
        return None
    parts = rel.removesuffix(".py").split("/")
    return ".".join([PACKAGE_ALIAS, *(parts[:-1] if parts[-1] == "__init__" else parts)])


def probe(source: adopt_source.Source, classes: list[adopt_source.ClassInfo], sets: dict, python: str, *,
          timeout: float = TIMEOUT, derived: dict | None = None) -> dict[str, dict]:
    """Run the runner on ``classes`` in ``python``; class name → its JSON (``ok`` false with ``error`` on failure).

    Each class gets ``timeout`` seconds; one that hangs or kills the process is reported and the classes after it
    are probed in a fresh process.
    """
    found: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="yamlforge-adopt-") as tmp:
        request = _materialise(source, Path(tmp) / "src")
        pending = list(classes)
        while pending:
            request["probes"] = [{"class": c.name, "module": _module_name(source, c.file), "sets": sets,
                                  "derived": derived or {}} for c in pending]
            answers, stderr, hung = _run_runner(python, request, Path(tmp), timeout)
            found.update(answers)
            stuck = next((c.name for c in pending if c.name not in found), None)
            if stuck:
                found[stuck] = {"class": stuck, "ok": False, "error": _no_answer(stuck, stderr, hung, timeout)}
            pending = [c for c in pending if c.name not in found]
    return found


def _run_runner(python: str, request: dict, tmp: Path, timeout: float) -> tuple[dict[str, dict], str, bool]:
    """(answers by class, stderr, whether a class hung): the runner's JSON lines, each within ``timeout``."""
    (tmp / "request.json").write_text(json.dumps(request), encoding="utf-8")
    answers: dict[str, dict] = {}
    with open(tmp / "stderr.txt", "w+", encoding="utf-8", errors="replace") as err:
        try:
            proc = subprocess.Popen([python, str(RUNNER), str(tmp / "request.json")], cwd=tmp, env=runner_env(tmp),
                                    stdout=subprocess.PIPE, stderr=err, text=True)
        except OSError as exc:
            raise YamlforgeError(f"cannot run '{python}': {exc.strerror}", where="--python") from None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        hung, wait = False, max(timeout, STARTUP_TIMEOUT)
        while (line := _next_line(lines, wait)) is not None:
            if line is _TIMED_OUT:
                hung = True
                proc.kill()
                break
            answer = json.loads(line)
            if "class" in answer:
                answers[answer["class"]] = answer
            wait = timeout
        proc.wait()
        err.seek(0)
        return answers, err.read(), hung


_TIMED_OUT = "timed out"


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        if line.strip():
            lines.put(line)
    lines.put(None)


def _next_line(lines: queue.Queue, timeout: float) -> str | None:
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return _TIMED_OUT


def _no_answer(name: str, stderr: str, hung: bool, timeout: float) -> str:
    """Why the runner gave no answer for ``name``: a hang (where it was) or a crash (its last line)."""
    lines = stderr.strip().splitlines()
    steps = [line.split(":", 1)[1].split() for line in lines if line.startswith("yamlforge-probe:")]
    at = next((f" (forward, {s[1]} input at {s[2]}x{s[2]})" for s in reversed(steps) if s[0] == name), "")
    if hung:
        return f"{name} did not finish within {timeout:.0f} s{at}; its code hangs or is far too slow on small inputs"
    last = lines[-1] if lines else "no output"
    return f"probing {name} crashed the Python process{at}: {last[:200]}"


# ------------------------------------------------------------------ decisions

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
                       f"{raw['in_arg'] or 'no argument (the class takes 3)'} and lists the output widths in width_list")
    if raw["layout"] != "nchw":
        reasons.append(LAYOUT_REASONS[raw["layout"]])
    if raw["multiple"] > 1:
        reasons.append(f"map sides must be multiples of {raw['multiple']}: the adapter pads them and crops the output")
    if [p["name"] for p in _positional(raw)][:len(channel)] != channel:
        reasons.append(f"{', '.join(channel)} must be the first constructor argument(s) for parse_model")
    unreachable = sorted(set(sets) - {p["name"] for p in _yaml_reachable(raw, sets)})
    if unreachable:
        reasons.append(f"the YAML row cannot pass {', '.join(unreachable)}: the adapter fixes it")
    reasons += [f"{name} is derived from the width ({_relation(name, ratio, 'c1')}): the adapter computes it"
                for name, ratio in raw.get("derived", {}).items()]
    return reasons


def _relation(name: str, ratio, width: str) -> str:
    """``hidden = 2 * c1`` for a derived argument with ratio [2, 1]."""
    ratio = Fraction(*ratio)
    times = "" if ratio.numerator == 1 else f"{ratio.numerator} * "
    return f"{name} = {times}{width}" + (f" // {ratio.denominator}" if ratio.denominator > 1 else "")


def _constraints(raw: dict) -> dict:
    """The spec's ``constraints``: the runner's learnt ones, and the derived arguments as relations."""
    found = dict(raw.get("constraints") or {})
    relations = [_relation(name, ratio, raw["in_arg"]) for name, ratio in raw.get("derived", {}).items()]
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
    argument -> file:line of the call its value in ``sets`` was read from."""
    reasons = tuple(_adapter_reasons(raw, sets))
    args = _spec_args(raw, sets, bool(reasons), proposed or {})
    kept = {a.name for a in args}
    rule = "backbone" if raw["role"] == "backbone" else raw["rule"]
    ratio = Fraction(*raw.get("ratio", (1, 1)))
    outputs = tuple((o["channels"], Fraction(o["stride"])) for o in raw.get("outputs", ()))
    return Decision(class_name=raw["class"], role=raw["role"], rule=rule, layout=raw["layout"],
                    stride=Fraction(raw.get("stride", "1")), multiple=raw["multiple"], in_arg=raw["in_arg"],
                    out_arg=raw["out_arg"] if rule in ("in_out", "equal") else None, args=args,
                    fixed={k: v for k, v in sets.items() if k not in kept}, outputs=outputs, ratio=ratio,
                    sizes=tuple(raw["sizes"]), adapter_reasons=reasons, constraints=_constraints(raw),
                    derived={k: Fraction(*v) for k, v in raw.get("derived", {}).items()})


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


# ------------------------------------------------------------------ rendering

CHANNEL_PARAMS = {"keep": ("c1",), "ratio": ("c1",), "in_out": ("c1", "c2"), "equal": ("c1",), "none": (),
                  "backbone": ("c1=3",)}


def _adapter_signature(d: Decision) -> tuple[str, str]:
    """(the adapter's parameters after self, the keyword arguments it passes to the class) as Python text."""
    params = [*CHANNEL_PARAMS[d.rule], *(f"{a.name}={a.default!r}" for a in d.args)]
    channels = [(d.in_arg, "c1"), (d.out_arg, "c2" if d.rule == "in_out" else "c1")]
    call = [f"{arg}={value}" for arg, value in channels if arg and d.rule != "none"]
    call += [_relation(name, (r.numerator, r.denominator), "c1").replace(" = ", "=") for name, r in d.derived.items()]
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


def render_spec(d: Decision, *, name: str, export: str, origin: str, source: str, entry: str | None,
                requires: list[str]) -> str:
    return render("adopt/spec.yaml.j2", d=d, name=name, export=export, origin=origin, source=source, entry=entry,
                  requires=[json.dumps(r) for r in requires], probed=summary(d), json=json.dumps)


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


# ------------------------------------------------------------------ planning


def _find_class(source: adopt_source.Source, class_name: str) -> adopt_source.ClassInfo:
    """The class to adopt: an nn.Module class the AST shows, else any top-level class of that name (the runner
    confirms it is one: ``nn`` may come from a star import)."""
    classes = adopt_source.module_classes(source)
    found = [c for c in classes if c.name == class_name] or \
        [c for c in adopt_source.candidate_classes(source) if c.name == class_name]
    if not classes and not found:
        raise YamlforgeError(f"no torch.nn.Module class in '{source.root / source.entry}'", where="SOURCE",
                             hint="pass the file or folder that defines the module")
    if not found:
        names = [c.name for c in classes]
        close = difflib.get_close_matches(class_name, names, n=3)
        raise YamlforgeError(f"no nn.Module class '{class_name}' in the source"
                             + (f"; did you mean {', '.join(close)}?" if close else ""), where="SOURCE::CLASS",
                             hint="its classes: " + ", ".join(names))
    if len(found) > 1:
        raise YamlforgeError(f"class '{class_name}' is defined in {', '.join(c.file for c in found)}",
                             where="SOURCE::CLASS", hint="pass the file that defines the one you mean")
    return found[0]


EXTENSION_FAILURES = ("NotImplementedError", "'NoneType' object", "_ext", "CUDA", "cuda")
EXTENSION_NAME = re.compile(r"'([\w.]*_ext\w*)'")


def _proposal_text(proposal: adopt_source.Proposal, width: str | None) -> str:
    value = _relation(proposal.name, proposal.ratio, width or "width") if proposal.ratio else \
        f"{proposal.name} = {proposal.value!r}"
    return f"{value} ({proposal.where})"


def _refusal(source: adopt_source.Source, python: str, error: str) -> str:
    """The runner's one-line error; a forward or import failing for a compiled (CUDA-only) extension names it."""
    if not any(word in error for word in EXTENSION_FAILURES):
        return error
    guarded = [replace(r, optional=False) for r in adopt_source.requirements(source) if r.optional]
    names = [f"{r.import_name} ({r.where})" for r in adopt_source.missing_requirements(python, guarded)]
    names += [m for m in EXTENSION_NAME.findall(error) if m not in {r.import_name for r in guarded}]
    if not names:
        return error
    return (f"it needs the compiled extension {', '.join(names)}, which {python} cannot import: a CUDA-only or "
            f"unbuilt operator cannot run in a detector on every device, so adopt refuses it ({error[:160]})")


def _requirements(source: adopt_source.Source, python: str) -> list[str]:
    """The pip names the spec requires; one missing from ``python`` is an error with the pip command."""
    reqs = adopt_source.requirements(source)
    missing = adopt_source.missing_requirements(python, reqs)
    if missing:
        first = missing[0]
        raise YamlforgeError(f"the source imports {', '.join(r.import_name for r in missing)}, which {python} "
                             "cannot import", where=first.where, hint=adopt_source.install_hint(python, missing))
    return list(dict.fromkeys(r.pip_name for r in reqs if not r.optional and not r.provided))


def _export_name(d: Decision, name: str | None) -> tuple[str, str]:
    """(spec name, the class name the YAML uses): the class itself, or its adapter."""
    if not d.needs_adapter:
        return name or d.class_name, d.class_name
    export = name or d.class_name + ADAPTER_SUFFIX
    if export == d.class_name:
        raise YamlforgeError(f"--name {export} is the adopted class's own name; its adapter needs another",
                             where="--name", hint=f"--name {d.class_name}{ADAPTER_SUFFIX}")
    return name or export, export


def plan_files(source: adopt_source.Source, info: adopt_source.ClassInfo, d: Decision, *, name: str, export: str,
               origin: str, requires: list[str]) -> dict[str, str]:
    """Every file adopt writes, relative to the output folder: the module file or package, and the spec."""
    stem = name.lower()
    if source.is_package:
        files = {f"{stem}/{rel}": text for rel, text in {**source.files, **adopt_source.relativize_imports(source)}
                 .items()}
        files.setdefault(f"{stem}/__init__.py", "")
        entry = info.file
        if d.needs_adapter:
            entry = "yamlforge_adapter.py"
            module = "." + info.file.removesuffix(".py").replace("/", ".")
            files[f"{stem}/{entry}"] = render_adapter(d, export, import_from=module)
        place = f"{stem}/"
    else:
        text = source.files[source.entry]
        entry, place = None, f"{stem}.py"
        files = {place: render_adapter(d, export, original=text) if d.needs_adapter else text}
    files[f"{stem}.yaml"] = render_spec(d, name=name, export=export, origin=origin, source=place, entry=entry,
                                        requires=requires)
    return files


def _validate(files: dict[str, str]) -> None:
    """Generated code must compile and the spec must load: a failure here is a yamlforge bug."""
    from ..modelyaml.load import load_nodes

    for rel, text in files.items():
        if rel.endswith(".py"):
            compile(text, rel, "exec")
        elif rel.endswith(".yaml"):
            load_nodes(text, where=rel, what="generated spec")


def _check_output(out_dir: Path, name: str | None) -> None:
    """Refuse, before any probing, a --name Python cannot import and an output folder that is a file."""
    if name is not None and not name.isidentifier():
        raise YamlforgeError(f"--name '{name}' is not a Python identifier", where="--name",
                             hint="letters, digits and underscores, not starting with a digit")
    if out_dir.exists() and not out_dir.is_dir():
        raise YamlforgeError(f"'{out_dir}' is a file, not a folder", where="-o",
                             hint="pass the folder the spec should go into")


def plan_writes(out_dir: Path, files: dict[str, str]) -> tuple[Changeset, dict[Path, str]]:
    """(the changeset writing ``files`` under ``out_dir``, each path's status word: create or identical).

    A file already there with other text is refused: it may be a spec edited by hand.
    """
    root = next(folder for folder in (out_dir, *out_dir.parents) if folder.is_dir()).resolve()
    changeset, statuses = Changeset(root), {}
    for rel, text in files.items():
        relpath = (out_dir.resolve() / rel).relative_to(root).as_posix()
        changeset.set(relpath, text)
        statuses[out_dir / rel] = changeset.changes[relpath].status
        if statuses[out_dir / rel] == "patch":
            raise YamlforgeError(f"'{out_dir / rel}' exists with other content; nothing was written", where="-o",
                                 hint="remove it to adopt again, or pass another -o folder")
    return changeset, statuses


def adopt(source: Path | str, class_name: str, name: str | None = None, sets: list[str] | tuple[str, ...] = (),
          python: str | None = None, out_dir: Path | str = ".", *, timeout: float | None = None,
          write: bool = True) -> AdoptResult:
    """Probe ``class_name`` of ``source`` in ``python`` and write its spec (and adapter) into ``out_dir``.

    Raises YamlforgeError, with nothing written, for bad input and for classes adopt refuses.
    """
    out = Path(out_dir)
    _check_output(out, name)
    values = parse_sets(sets)
    python = resolve_python(python)
    src = adopt_source.load_source(gitsource.fetch(source) if gitsource.is_git_source(source) else source)
    info = _find_class(src, class_name)
    if src.is_package:
        src = adopt_source.narrow(src, info.file)
    requires = _requirements(src, python)
    found = {p.name: p for p in adopt_source.proposals(src, info) if p.name not in values}
    literals = {name: p.value for name, p in found.items() if p.ratio is None}
    raw = probe(src, [info], {**values, **literals}, python, timeout=timeout or probe_timeout(),
                derived={name: p.ratio for name, p in found.items() if p.ratio})[info.name]
    if not raw["ok"]:
        raise YamlforgeError(_refusal(src, python, raw["error"]), where=f"{info.file}:{info.line}")
    decision = replace(decide(raw, {**values, **literals}, {name: found[name].where for name in literals}),
                       proposed=tuple(_proposal_text(p, raw["in_arg"]) for p in found.values()))
    spec_name, export = _export_name(decision, name)
    origin = f"{source}::{class_name}"
    files = plan_files(src, info, decision, name=spec_name, export=export, origin=origin, requires=requires)
    _validate(files)
    changeset, statuses = plan_writes(out, files)
    if write:
        write_changeset(changeset)
    spec_path = out / f"{spec_name.lower()}.yaml"
    return AdoptResult(name=spec_name, decision=decision, spec_path=spec_path, yaml_row=yaml_row(decision, export),
                       apply_command=f"yamlforge apply --repo REPO --spec {spec_path}",
                       files={out / rel: text for rel, text in files.items()}, statuses=statuses,
                       notes=[*decision.adapter_reasons, *(f"proposed from the source: {p}" for p in decision.proposed)])


def survey(source: Path | str, python: str | None = None, *, timeout: float | None = None) -> list[ClassReport]:
    """Every nn.Module class of ``source`` with what probing found (no --set values); writes nothing."""
    python = resolve_python(python)
    src = adopt_source.load_source(gitsource.fetch(source) if gitsource.is_git_source(source) else source)
    classes = adopt_source.module_classes(src)
    candidates = adopt_source.candidate_classes(src)  # the runner keeps those that are nn.Modules
    if not classes and not candidates:
        raise YamlforgeError(f"no torch.nn.Module class in '{source}'", where="SOURCE",
                             hint="pass the file or folder that defines the module")
    _requirements(src, python)
    found = probe(src, classes + candidates, {}, python, timeout=timeout or probe_timeout())
    reports = []
    for info in classes + [c for c in candidates if NOT_A_MODULE not in found[c.name].get("error", "")]:
        raw = found[info.name]
        where = f"{info.file}:{info.line}"
        reports.append(ClassReport(info.name, where, decision=decide(raw, {})) if raw["ok"]
                       else ClassReport(info.name, where, error=raw["error"]))
    return reports
