"""Shared by every runner: target facts, the report, importing the target (settings quiet), one-line errors, JSON."""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import sys
import traceback
from pathlib import Path

VERIFY_SCHEMA = "yamlforge.verify/1"
FACTS_SCHEMA = "yamlforge.target/1"
# Every key of the facts JSON this runner reads (yamlforge's Target.runner_facts sends exactly these).
FACT_KEYS = frozenset({
    "schema", "kind", "version", "root", "package", "tasks_module", "modules_dir", "yaml_loader", "name_lookup",
    "build", "model_class", "wrappers", "flops_function", "loss", "loss_args", "trainer", "train_scripts",
    "checkpoint_loader", "safe_load_env", "safe_load_since", "uninstall_hint", "stock_names", "ddp_launcher",
    "thop_distribution", "thop_distribution_since", "checkpoint_fields", "path_entry", "train_flags",
    "train_hyp", "legacy_numpy", "export_script", "export_opset_fix",
    "settings_files", "quiet_settings", "settings_object", "analytics_clients", "checkpoint_models", "freeze_syntax",
    "task_tables", "entry_point", "task_heads", "script_losses", "script_models",
})
# yamlforge.target_python sets it: "1" when the user passed --log (the run keeps the settings the user has)
LOG_ENV = "YAMLFORGE_LOG"
# Import name -> pip distribution, shared with adopt's requirement check (yamlforge.adopt.source): read by path, since
# a runner imports nothing from yamlforge.
PIP_NAMES_FILE = Path(__file__).resolve().parent.parent / "data" / "pip_names.json"
# Checkout loaders that predate torch 2.6's weights_only=True default (YOLOv9, Ultralytics before 8.1.x) need this.
LEGACY_LOAD_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


class FactsError(ValueError):
    """The ``--target`` facts are not something this runner understands (a yamlforge version mismatch)."""


class Report:
    """Collects checks in the order they run; the first failure is what the user reads first."""

    def __init__(self, **meta):
        self.data = {"schema": VERIFY_SCHEMA, "checks": [], "layers": [], "totals": {}, "notes": [], **meta}

    def check(self, name, status, message, hint=None, **details):
        self.data["checks"].append({"name": name, "status": status, "message": message, "hint": hint, **details})
        return status != "fail"

    def note(self, text):
        self.data["notes"].append(text)

    def failed(self):
        return any(c["status"] == "fail" for c in self.data["checks"])


def load_callable(spec: str):
    """The object a ``"module:name"`` fact names, imported from the checkout."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def by_head(pairs, cfg_dict: dict) -> str:
    """The value of the first ``(head module prefix, value)`` pair the model's head module starts with."""
    head = head_module(cfg_dict)
    return next(value for prefix, value in pairs if head.startswith(prefix))


def head_module(cfg_dict: dict) -> str:
    head = cfg_dict.get("head") or []
    return str(head[-1][2]) if head and len(head[-1]) > 2 else ""


def release(version: str) -> tuple[int, ...]:
    """``"8.3.100"`` -> ``(8, 3, 100)``: release numbers compare as tuples (``"8.4"`` sorts before ``"8.4.190"``)."""
    return tuple(int(v) for v in re.findall(r"\d+", version)[:3])


def version_at_least(version: str | None, since: str | None) -> bool:
    return bool(version and since) and release(version) >= release(since)


def put_checkout_on_path(root: str) -> None:
    """Make the checkout importable: ``root`` is the facts' ``path_entry`` (the parent of a pip-packaged root)."""
    if os.environ.get("YAMLFORGE_VERIFY_PATH") == "append":
        sys.path.append(root)
    else:
        sys.path.insert(0, root)


def imported_package(package: str, root: Path) -> dict:
    """Import the target package the way the model code will and say where it came from."""
    module = __import__(package)
    file = Path(module.__file__).resolve()
    inside = root.resolve() in file.parents
    return {"package": package, "file": str(file), "version": getattr(module, "__version__", None),
            "inside_checkout": inside}


def check_import(report: Report, facts: dict, root: Path) -> bool:
    try:
        info = imported_package(facts["package"], root)
    except Exception as exc:  # a syntax error in a patched file, a missing dependency of the target
        report.data["imported"] = None
        return report.check("import", "fail", f"importing the checkout failed: {one_line(exc)}",
                            hint=hint_for(exc, facts["package"]) or f"yamlforge doctor --repo {root}",
                            where=where_in_traceback(exc))
    report.data["imported"] = info
    report.data["settings"] = quiet_settings(facts)
    if info["inside_checkout"]:
        return report.check("import", "pass", f"{info['package']} imported from the checkout ({info['file']})")
    version = f" {info['version']}" if info["version"] else ""
    return report.check(
        "import", "fail",
        f"Python imports {info['package']}{version} from {info['file']}, not from the checkout {root}: "
        "your edits to the checkout are invisible to it (the classic symptom is KeyError: '<YourModule>' "
        "when the model is built)",
        hint=f"{facts['uninstall_hint']} (or `pip install -e {root}`), or run with PYTHONPATH={root}")


def quiet_settings(facts: dict) -> dict | None:
    """Once the target imports: its analytics and logging integrations (``quiet_settings``) off in its live settings,
    unless the user passed --log; returns how the run started.

    yamlforge copies the user's settings file, already quiet, into the private config folder; this catches a target
    that found no usable copy (no file, another release's schema) and started from defaults that turn them on.
    """
    if not facts["settings_object"]:
        return None
    try:
        settings = load_callable(facts["settings_object"])
    except Exception:  # a release without settings: nothing to turn off
        return None
    log = os.environ.get(LOG_ENV) == "1"
    corrected = [] if log else [key for key in facts["quiet_settings"] if settings.get(key) is True]
    if corrected:
        settings.update(dict.fromkeys(corrected, False))  # saves the private copy; the user's file is elsewhere
    if "sync" in corrected:  # a client built at import read the defaults
        for client in analytics_clients(facts).values():
            client.enabled = False
    return {"file": str(getattr(settings, "file", "")), "log": log, "corrected": corrected}


def analytics_clients(facts: dict) -> dict:
    """The target's analytics clients built in this process so far (importing one would build it)."""
    found = {}
    for spec in facts["analytics_clients"]:
        module, _, name = spec.partition(":")
        if hasattr(sys.modules.get(module), name):
            found[spec] = getattr(sys.modules[module], name)
    return found


def settings_state(facts: dict, started: dict | None) -> dict | None:
    """How the run ended: the target's settings (API keys left out) and what its analytics client decided."""
    if started is None:
        return None
    settings = load_callable(facts["settings_object"])
    clients = {spec: {"enabled": bool(getattr(client, "enabled", False)),
                      # what the client's module read at import: Ultralytics sends nothing under tests or offline
                      "tests_running": getattr(sys.modules[spec.partition(":")[0]], "TESTS_RUNNING", None),
                      "online": getattr(sys.modules[spec.partition(":")[0]], "ONLINE", None)}
               for spec, client in analytics_clients(facts).items()}
    return {**started, "values": {k: v for k, v in settings.items() if "key" not in k}, "analytics": clients}


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, spaces collapsed and cut at 300 characters (``Type`` alone without one)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[0].split())[:300] if lines else ""
    return f"{type(exc).__name__}: {text}".rstrip(": ")


@functools.lru_cache(maxsize=1)
def pip_table() -> dict:
    """The shared table: ``pip_names`` (import name -> distribution) and ``pinned`` (distribution -> requirement)."""
    return json.loads(PIP_NAMES_FILE.read_text(encoding="utf-8"))


def install_name(module: str) -> str:
    """What ``pip install`` needs for the top-level ``module`` (shell-quoted when it carries a version bound)."""
    table = pip_table()
    name = table["pip_names"].get(module, module)
    pinned = table["pinned"].get(name)
    return f"'{pinned}'" if pinned else name


def hint_for(exc: BaseException, package: str) -> str | None:
    """The install command for a module the target needs but this Python lacks (not the target's own ``package``),
    or for the torchvision that matches torch."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        if top != package:
            return f"{sys.executable} -m pip install {install_name(top)}"
    if isinstance(exc, RuntimeError) and "torchvision::" in str(exc):  # "operator torchvision::nms does not exist"
        import torch

        wanted = matching_torchvision(torch.__version__)
        fix = f"{sys.executable} -m pip install '{wanted}'" if wanted else "install the torchvision made for it"
        return f"torchvision was built for another torch than {torch.__version__}: {fix}"
    return None


def matching_torchvision(torch_version: str) -> str | None:
    """The torchvision requirement released with ``torch_version`` (torch 2.m ships with torchvision 0.(m+15))."""
    major, minor = (int(v) for v in re.findall(r"\d+", torch_version)[:2])
    return f"torchvision==0.{minor + 15}.*" if major == 2 else None


def where_in_traceback(exc: BaseException) -> str | None:
    """The deepest ``file:line`` of the traceback inside the checkout or model code."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


def failing_layer(exc: BaseException) -> dict | None:
    """The layer being built (parse_model's ``i``, ``m``) or run (innermost ``self`` with ``.i``) when ``exc`` rose."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        local = tb.tb_frame.f_locals
        layer = local.get("self")
        if tb.tb_frame.f_code.co_name == "parse_model" and isinstance(local.get("i"), int):
            found = {"index": local["i"], "module": str(local.get("m"))}
        elif isinstance(getattr(layer, "i", None), int) and hasattr(layer, "f"):
            found = {"index": layer.i, "module": type(layer).__name__}
        tb = tb.tb_next
    if found and "." in found["module"] and not found["module"].startswith("nn."):
        found["module"] = found["module"].rsplit(".", 1)[-1].rstrip("'>")
    return found


def fail_at_layer(report: Report, name: str, exc: BaseException, doing: str, hint: str | None = None) -> bool:
    """A failed check ``name`` whose message starts with the layer that raised ``exc`` (when there is one)."""
    layer = failing_layer(exc)
    at = f"layer {layer['index']} ({layer['module']}): " if layer else ""
    return report.check(name, "fail", f"{at}{doing}: {one_line(exc)}", hint=hint, where=where_in_traceback(exc),
                        layer=layer)


def tensors(obj):
    """Every tensor in a nested output (tuples, lists, dicts)."""
    import torch

    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors(item)


def shape_of(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return list(obj.shape)
    if isinstance(obj, (list, tuple)):
        return [shape_of(o) for o in obj if o is not None]
    return None


def random_images(batch: int, imgsz: int):
    import torch

    torch.manual_seed(0)
    return torch.rand(batch, 3, imgsz, imgsz)


def torch_threads() -> int:
    """``OMP_NUM_THREADS`` when set (processes sharing the cores: more threads than cores make every one of them
    spin and crawl), else at most two (the numbers verify and compare report are for that)."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    return int(given) if given.isdigit() and int(given) > 0 else max(1, min(2, os.cpu_count() or 1))


def import_torch(report: Report) -> bool:
    """torch, on :func:`torch_threads` threads."""
    try:
        import torch

        report.data["torch"] = torch.__version__
        torch.set_num_threads(torch_threads())
    except Exception as exc:
        return report.check("import", "fail", f"torch does not import in {sys.executable}: {one_line(exc)}",
                            hint=f"{sys.executable} -m pip install torch torchvision")
    return True


def print_one_json(compute, schema: str) -> None:
    """Print ``compute()``'s answer (or the crash) as the one JSON line on stdout; everything else goes to stderr."""
    json_out = json_stdout()
    try:
        answer = compute()
    except BaseException as exc:  # a bug here or in the target: still one JSON object, with the traceback
        traceback.print_exc()
        answer = {"schema": schema, "internal_error": "".join(traceback.format_exception(exc))[-4000:],
                  "error": one_line(exc)}
    json_out.write(json.dumps(answer, default=str) + "\n")
    json_out.flush()


def json_stdout():
    """Every runner's first step: stdout's file descriptor kept for our JSON (returned as a stream), and whatever else
    is printed (tables, progress bars, the user's prints, even from C code) sent to stderr."""
    json_out = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return json_out
