"""A study's plan: the base and its variants (each a gen-yaml edit), seeds and hyperparameters, as data in DIR.

The plan is computed without training anything and written first (``DIR/plan.json``, the variants' YAMLs in
``DIR/models/``); a rerun of the same command finds the same plan there (its fingerprint) and carries on, a different
one is refused. A placement gen-yaml refuses stays in the plan as a refused variant, with gen-yaml's reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import YamlforgeError
from ..modelyaml.compile import GenRequest, compile_yaml
from ..modelyaml.edits import parse_edit
from ..targets import detect_target
from .tasks import check_data_task, model_task

SCHEMA = "yamlforge.study/1"
PLAN_FILE = "plan.json"
BASE_ROW = "base"


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


@dataclass(frozen=True)
class StudyRequest:
    """What ``yamlforge ablate`` was asked: the base, the module and its positions, the dataset and the training."""

    base: str
    repo: Path | None
    data: Path
    module: str
    at: tuple[int, ...]
    out: Path
    seeds: tuple[int, ...] = (0,)
    hyper: Hyper = field(default_factory=Hyper)


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

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **asdict(self)}

    @property
    def fingerprint(self) -> str:
        """The plan's identity: equal for the same command on the same checkout and dataset."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def trials(self) -> list[tuple[Variant, int]]:
        """Every (variant, seed) to train, in the order given, the seeds of a row together; refused rows have none."""
        return [(v, seed) for v in self.variants if v.refused is None for seed in self.seeds]

    @classmethod
    def from_dict(cls, raw: dict) -> Plan:
        variants = tuple(Variant(v["name"], tuple(v["edits"]), v["yaml"], v["refused"]) for v in raw["variants"])
        return cls(raw["base"], raw["repo"], raw["data"], raw["target"], tuple(raw["seeds"]), Hyper(**raw["hyper"]),
                   variants, raw.get("task"))


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


def make_plan(request: StudyRequest) -> tuple[Plan, dict[str, str]]:
    """The base row and one row per ``--at`` position, compiled by gen-yaml, with their YAML texts by relative path
    (nothing written yet)."""
    data, data_yaml = read_data(request.data)
    if request.hyper.epochs < 1 or request.hyper.batch < 1 or request.hyper.imgsz < 32:
        raise YamlforgeError("--epochs and --batch must be at least 1 and --imgsz at least 32", where="--epochs")
    if not request.seeds or len(set(request.seeds)) != len(request.seeds):
        raise YamlforgeError("--seeds must name each seed once", where="--seeds")
    stem = Path(request.base).stem if request.base.endswith((".yaml", ".yml")) else request.base
    base = compile_yaml(GenRequest(request.base, repo=request.repo, output=_model_path(request.out, stem),
                                   dry_run=True, force=True))
    check_positions(request.at, base.new_text)
    task = model_task(request.base, base.new_text)
    check_data_task(task, data, data_yaml)
    variants = [Variant(BASE_ROW, (), _relative(base.output_path, request.out))]
    texts = {variants[0].yaml: base.new_text}
    module_name = re.sub(r"\W+", "", request.module.partition("(")[0]) or "module"
    for at in request.at:
        name = f"{module_name}-at{at}"
        edit = f"{at}={request.module}"
        try:
            result = compile_yaml(GenRequest(request.base, [parse_edit("insert-after", edit)], repo=request.repo,
                                             output=_model_path(request.out, f"{stem}-{name}"), dry_run=True,
                                             force=True))
        except YamlforgeError as exc:
            variants.append(Variant(name, (f"--insert-after {edit}",), None, str(exc)))
            continue
        variants.append(Variant(name, (f"--insert-after {edit}",), _relative(result.output_path, request.out)))
        texts[variants[-1].yaml] = result.new_text
    root = base.root if base.root is not None else Path.cwd()
    plan = Plan(request.base, str(root), str(data), detect_target(root).label, tuple(request.seeds), request.hyper,
                tuple(variants), task)
    return plan, texts


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
