"""A study's plan: the base and its variants (each a gen-yaml edit), seeds and hyperparameters, as data in DIR.

The plan is computed without training anything and written first (``DIR/plan.json``, the variants' YAMLs in
``DIR/models/``, with ``--base-weights`` each variant's carried checkpoint beside its YAML); a rerun of the same
command finds the same plan there (its fingerprint) and carries on, a different one is refused. A variant gen-yaml
refuses stays in the plan as a refused row, with gen-yaml's reason; ``--at auto`` keeps only the candidates gen-yaml
accepts and says which it chose (the plan's notes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import YamlforgeError
from ..modelyaml.compile import GenRequest, compile_yaml
from ..targets import detect_target
from .positions import Candidate, candidate_layers, describe
from .tasks import check_data_task, model_task
from .variants import BASE_ROW, VariantSpec, check_names, gen_request, module_variants

SCHEMA = "yamlforge.study/1"
PLAN_FILE = "plan.json"
AUTO = "auto"  # --at auto


@dataclass(frozen=True)
class Hyper:
    """One set of training options for every trial (``workers``: None keeps the trainer's default; ``options``: more
    of the trainer's own, by its names: Ultralytics' train arguments, the train.py scripts' hyperparameters)."""

    epochs: int = 100
    imgsz: int = 640
    batch: int = 16
    workers: int | None = None
    deterministic: bool = True
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """One row: its name, the gen-yaml edits that make it from the base, its YAML (relative to DIR) or why not."""

    name: str
    edits: tuple[str, ...]
    yaml: str | None
    refused: str | None = None
    weights: str | None = None  # --base-weights: the checkpoint it starts from (relative to DIR: the carried one)


@dataclass(frozen=True)
class StudyRequest:
    """What ``yamlforge ablate`` was asked: the base, its variants (``module`` after each ``at`` layer, ``at`` a tuple
    or AUTO; ``variants`` of any gen-yaml edits), the dataset and the training."""

    base: str
    repo: Path | None
    data: Path
    module: str | tuple[str, ...] | None
    at: tuple[int, ...] | str | None
    out: Path
    seeds: tuple[int, ...] = (0,)
    hyper: Hyper = field(default_factory=Hyper)
    variants: tuple[VariantSpec, ...] = ()
    residual: bool = False  # the --module rows in the form x + MODULE(x)
    base_weights: Path | None = None

    @property
    def modules(self) -> tuple[str, ...]:
        return (self.module,) if isinstance(self.module, str) else tuple(self.module or ())


@dataclass(frozen=True)
class Plan:
    base: str
    repo: str
    data: str
    target: str  # the checkout's label (ultralytics 8.4.190)
    seeds: tuple[int, ...]
    hyper: Hyper
    variants: tuple[Variant, ...]
    task: str | None = None  # the base's (tasks.model_task): its dataset check and its metric columns
    base_weights: str | None = None
    notes: tuple[str, ...] = ()  # what the plan decided for the user (--at auto's layers), said when it runs

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}

    @property
    def fingerprint(self) -> str:
        """The plan's identity: equal for the same command on the same checkout and dataset."""
        identity = {key: value for key, value in self.to_dict().items() if key != "notes"}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]

    def trials(self) -> list[tuple[Variant, int]]:
        """Every (variant, seed) to train, in the order given, the seeds of a row together; refused rows have none."""
        return [(v, seed) for v in self.variants if v.refused is None for seed in self.seeds]

    @classmethod
    def from_dict(cls, raw: dict) -> Plan:
        variants = tuple(Variant(v["name"], tuple(v["edits"]), v["yaml"], v["refused"], v.get("weights"))
                         for v in raw["variants"])
        return cls(raw["base"], raw["repo"], raw["data"], raw["target"], tuple(raw["seeds"]), Hyper(**raw["hyper"]),
                   variants, raw.get("task"), raw.get("base_weights"), tuple(raw.get("notes", ())))


def trial_name(variant: Variant, seed: int) -> str:
    return f"{variant.name}-s{seed}"


def check_data(data: Path) -> Path:
    """The dataset YAML, absolute: it must exist and name a ``val`` split (every row is validated on it)."""
    return read_data(data)[0]


def read_data(data: Path) -> tuple[Path, dict]:
    """:func:`check_data`'s path and the YAML's mapping."""
    import yaml

    path = data.expanduser().resolve()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise YamlforgeError(f"cannot read the dataset YAML: {exc.strerror}", where=str(data)) from None
    except yaml.YAMLError as exc:
        raise YamlforgeError(f"the dataset YAML is not YAML: {str(exc).splitlines()[0]}", where=str(data)) from None
    if not isinstance(raw, dict) or not raw.get("val"):
        raise YamlforgeError("the dataset YAML has no 'val' split: every row is validated on it", where=str(data),
                             hint="add 'val: images/val' (a folder, a .txt list or a list of them)")
    return path, raw


def data_classes(data: Path) -> int | None:
    """The dataset's number of classes (``nc``, else its ``names``): every row's YAML is built for it, as the trainer
    builds the model, so compare measures the model trained and a ``--base-weights`` head carries whole."""
    import yaml

    raw = yaml.safe_load(data.expanduser().read_text(encoding="utf-8"))
    nc = raw.get("nc")
    if isinstance(nc, int) and not isinstance(nc, bool) and nc > 0:
        return nc
    return len(raw["names"]) if isinstance(raw.get("names"), (list, dict)) and raw["names"] else None


def make_plan(request: StudyRequest) -> tuple[Plan, dict[str, str]]:
    """The base row, then one row per ``--module``/``--at`` position and per ``--variant``, compiled by gen-yaml,
    with their YAML texts by relative path (nothing written yet)."""
    data = check_request(request)
    stem = Path(request.base).stem if request.base.endswith((".yaml", ".yml")) else request.base
    base = compile_yaml(GenRequest(request.base, repo=request.repo, output=_model_path(request.out, stem),
                                   nc=data_classes(data), dry_run=True, force=True))
    task = model_task(request.base, base.new_text)
    check_data_task(task, data, read_data(request.data)[1])
    weights = str(request.base_weights.expanduser().resolve()) if request.base_weights else None
    variants = [Variant(BASE_ROW, (), _relative(base.output_path, request.out), weights=weights)]
    texts = {variants[0].yaml: base.new_text}
    module_rows, notes = _module_rows(request, stem, texts, base_text=base.new_text)
    check_names([spec for spec, _ in module_rows] + list(request.variants))
    rows = module_rows + [(spec, compile_variant(request, spec, stem, texts)) for spec in request.variants]
    variants += [variant for _, variant in rows]
    root = base.root if base.root is not None else Path.cwd()
    plan = Plan(request.base, str(root), str(data), detect_target(root).label, tuple(request.seeds), request.hyper,
                tuple(variants), task, weights, tuple(notes))
    return plan, texts


def check_request(request: StudyRequest) -> Path:
    """Bad input before anything is compiled: the dataset, the training options, the checkpoint, some variant."""
    data = check_data(request.data)
    if request.hyper.epochs < 1 or request.hyper.batch < 1 or request.hyper.imgsz < 32:
        raise YamlforgeError("--epochs and --batch must be at least 1 and --imgsz at least 32", where="--epochs")
    if not request.seeds or len(set(request.seeds)) != len(request.seeds):
        raise YamlforgeError("--seeds must name each seed once", where="--seeds")
    if request.base_weights is not None and not request.base_weights.expanduser().is_file():
        raise YamlforgeError(f"checkpoint '{request.base_weights}' does not exist", where="--base-weights")
    if bool(request.modules) != bool(request.at):
        raise YamlforgeError("--module and --at go together: the module, and the layers to insert it after",
                             where="--at" if request.modules else "--module",
                             hint="--module SHSA --at 4,6,9 or --module SHSA --at auto")
    if not request.modules and not request.variants:
        raise YamlforgeError("no variant to compare with the base", where="--module",
                             hint='--module SHSA --at auto, or --variant "c3: --replace 6=C3"')
    return data


def _module_rows(request: StudyRequest, stem: str, texts: dict[str, str], *,
                 base_text: str) -> tuple[list[tuple[VariantSpec, Variant]], list[str]]:
    """The ``--module``/``--at`` rows; ``--at auto`` keeps the candidates gen-yaml accepts for every module, and
    says which (the plan's notes)."""
    if not request.modules:
        return [], []
    if request.at != AUTO:
        check_positions(request.at, base_text)
        specs = module_variants(list(request.modules), request.at, residual=request.residual)
        return [(spec, compile_variant(request, spec, stem, texts)) for spec in specs], []
    candidates = candidate_layers(request.base, request.repo)
    rows, notes = [], []
    for module in request.modules:
        specs = module_variants([module], tuple(c.layer for c in candidates), residual=request.residual)
        compiled = [(spec, compile_variant(request, spec, stem, texts)) for spec in specs]
        kept = [(c, row) for c, row in zip(candidates, compiled) if row[1].refused is None]
        if not kept:
            raise YamlforgeError(f"--at auto: gen-yaml refuses {module} at every candidate layer "
                                 f"({describe(candidates)}): {compiled[0][1].refused}", where="--at")
        rows += [row for _, row in kept]
        notes.append(_auto_note(module, [c for c, _ in kept], [(c, row[1]) for c, row in zip(candidates, compiled)
                                                                if row[1].refused is not None]))
    return rows, notes


def _auto_note(module: str, chosen: list[Candidate], skipped: list[tuple[Candidate, Variant]]) -> str:
    note = f"--at auto: {module} after layers {describe(chosen)}"
    return note + "".join(f"; not after {c.layer}: {variant.refused}" for c, variant in skipped)


def compile_variant(request: StudyRequest, spec: VariantSpec, stem: str, texts: dict[str, str]) -> Variant:
    """One variant by gen-yaml (its text added to ``texts``), or the refused row with gen-yaml's reason."""
    yaml = _model_path(request.out, f"{stem}-{spec.name}")
    try:
        result = compile_yaml(gen_request(spec.edits, request.base, repo=request.repo, output=yaml,
                                          nc=data_classes(request.data), dry_run=True, force=True,
                                          where=f"{spec.where} {spec.name}"))
    except YamlforgeError as exc:
        return Variant(spec.name, spec.edits, None, str(exc))
    relative = _relative(result.output_path, request.out)
    texts[relative] = result.new_text
    weights = str(Path(relative).with_suffix(".pt").as_posix()) if request.base_weights else None
    return Variant(spec.name, spec.edits, relative, weights=weights)


def check_positions(at: tuple[int, ...], base_text: str) -> None:
    """``--at`` must name at least one layer of the base (a position past its last layer alone is a refused row)."""
    import yaml

    raw = yaml.safe_load(base_text) or {}
    count = sum(len(raw.get(section) or []) for section in ("backbone", "head"))
    if not at or all(not 0 <= n < count for n in at):
        raise YamlforgeError(f"--at {','.join(map(str, at))} names no layer: the base has layers 0..{count - 1}",
                             where="--at")


def parse_numbers(text: str, option: str) -> tuple[int, ...]:
    """``--at 4,6,9`` or ``--seeds 0,1`` -> (4, 6, 9), (0, 1)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise YamlforgeError(f"{option} takes whole numbers separated by commas, got '{text}'", where=option) from None


def parse_options(pairs: list[str]) -> dict:
    """``--set nbs=8 --set optimizer=SGD`` -> {"nbs": 8, "optimizer": "SGD"} (values read as YAML scalars)."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise YamlforgeError(f"--set takes KEY=VALUE, got '{pair}'", where="--set")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            options[key.strip()] = value
    return options


def _model_path(out: Path, stem: str) -> Path:
    return out.resolve() / "models" / f"{stem}.yaml"


def _relative(path: Path, out: Path) -> str:
    return path.relative_to(out.resolve()).as_posix()


def write_plan(plan: Plan, texts: dict[str, str], out: Path) -> None:
    """Write the plan and its YAMLs (``texts`` by path relative to ``out``) into ``out``; a plan already there must
    be this one (same fingerprint)."""
    path = out / PLAN_FILE
    if path.is_file():
        old = read_plan(out)
        if old.fingerprint != plan.fingerprint:
            raise YamlforgeError(f"{out} holds a different study (its plan.json differs from this command's)",
                                 where="-o", hint="give another -o folder, or rerun the command that made it")
        return
    out.mkdir(parents=True, exist_ok=True)
    for relative, text in texts.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text(text, encoding="utf-8")
    path.write_text(json.dumps({**plan.to_dict(), "fingerprint": plan.fingerprint}, indent=2) + "\n",
                    encoding="utf-8")


def read_plan(out: Path) -> Plan:
    try:
        raw = json.loads((out / PLAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise YamlforgeError(f"{out} holds no study ({PLAN_FILE}: {exc})", where=str(out),
                             hint="run yamlforge ablate BASE ... -o DIR first") from None
    if raw.get("schema") != SCHEMA:
        raise YamlforgeError(f"{out / PLAN_FILE} has schema {raw.get('schema')!r}, not {SCHEMA}", where=str(out))
    return Plan.from_dict(raw)


def write_carried_weights(plan: Plan, out: Path, *, python: str, progress: Callable[[str], None]) -> None:
    """``--base-weights``: each variant's checkpoint beside its YAML, the base's tensors carried into every row it
    keeps (``yamlforge weights --base``), once per study. One that cannot be made stops the study before training."""
    from ..weights.load import load_weights

    target = detect_target(plan.repo)
    for variant in plan.variants:
        if variant.weights is None or variant.name == BASE_ROW or (out / variant.weights).is_file():
            continue
        final = out / variant.weights
        partial = final.with_name(f"{final.stem}.partial.pt")  # a driver killed while it is written leaves no .pt
        try:
            result = load_weights(out / variant.yaml, target, [], partial, base=Path(plan.base_weights), python=python)
        except YamlforgeError as exc:
            raise YamlforgeError(f"variant {variant.name}: {exc.message}; nothing was trained", where="--base-weights",
                                 hint=exc.hint) from None
        partial.replace(final)
        carried = sum(len(row["carried"]) for row in result.base["rows"]) if result.base else 0
        progress(f"carry    {variant.weights} ({carried} base tensor(s) of {Path(plan.base_weights).name})")
