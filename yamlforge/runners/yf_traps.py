"""Runs inside the target's Python: what breaks after a clean apply because of the environment (DDP, thop, ...)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

if __package__:  # imported as yamlforge.runners.yf_traps (the tests)
    from . import yf_facts
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts


# What a DDP worker does first. torch.distributed.run starts ``python -u <script>`` with the script Ultralytics
# writes into the user's config folder: sys.path holds that folder and site-packages, never the checkout.
DDP_WORKER = """import importlib.util, json
spec = importlib.util.find_spec({package!r})
print(json.dumps(spec and spec.origin))
"""


def relaunch_keeps_path(facts: dict) -> bool:
    """Ultralytics 8.4 writes the trainer's own sys.path into the DDP script: its workers import what it imports."""
    import inspect

    return re.search(r"\bsys\.path\s*=", inspect.getsource(yf_facts.load_callable(facts["ddp_launcher"]))) is not None


def fresh_worker_origin(package: str) -> str | None:
    """The file a DDP worker (a fresh Python running a script outside the checkout) imports ``package`` from."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="yamlforge-ddp-") as tmp:
        script = Path(tmp) / "ddp_worker.py"
        script.write_text(DDP_WORKER.format(package=package), encoding="utf-8")
        result = subprocess.run([sys.executable, "-u", str(script)], cwd=tmp, capture_output=True, text=True,
                                timeout=120, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def version_in(init_file: str) -> str:
    text = Path(init_file).read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    return match.group(1) if match else "(no version)"


def checkout_on_path_fix(facts: dict, root: Path, shadowed: bool) -> str:
    """How to make every Python started in this environment import the checkout."""
    if (root / "pyproject.toml").is_file() or (root / "setup.py").is_file():
        return f"{sys.executable} -m pip install -e {root}"
    import sysconfig

    pth = Path(sysconfig.get_paths()["purelib"]) / f"{facts['package']}-checkout.pth"
    first = f"{facts['uninstall_hint']}, then " if shadowed else ""
    return (f"{first}echo {root} > {pth}  (the checkout has no pyproject.toml or setup.py for `pip install -e`; "
            "a .pth file in site-packages puts it on every Python's path)")


def ddp_trap(facts: dict, root: Path) -> dict | None:
    """Multi-GPU training re-imports the target in fresh workers outside the checkout: do they get the checkout?"""
    if not facts["ddp_launcher"] or relaunch_keeps_path(facts):
        return None
    package = facts["package"]
    origin = fresh_worker_origin(package)
    if origin and root in Path(origin).resolve().parents:
        return None
    found = f"imports {package} {version_in(origin)} from {origin}" if origin else f"cannot import {package}"
    return {"name": "ddp",
            "message": f"multi-GPU (DDP) training runs its workers in a fresh Python outside the checkout, and that "
                       f"Python {found}: DDP training dies with KeyError: '<your module>' (single-GPU training works)",
            "fix": checkout_on_path_fix(facts, root, shadowed=origin is not None)}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def thop_owners(origin: Path) -> list[str]:
    """The installed distributions that recorded ``thop/__init__.py`` at ``origin`` with its current content."""
    import base64
    import hashlib
    from importlib import metadata

    digest = base64.urlsafe_b64encode(hashlib.sha256(origin.read_bytes()).digest()).rstrip(b"=").decode()
    owners = []
    for name in dict.fromkeys(metadata.packages_distributions().get("thop", [])):
        record = next((f for f in metadata.distribution(name).files or () if f.parts == ("thop", "__init__.py")), None)
        same_hash = record is not None and (record.hash is None or record.hash.value == digest)
        if same_hash and Path(record.locate()).resolve() == origin:
            owners.append(name)
    return owners


def thop_trap(facts: dict) -> dict | None:
    """YOLOv5's and YOLOv9's requirements install PyPI's thop over ultralytics-thop: 8.4's get_flops then says 0."""
    import importlib.util

    wanted = facts["thop_distribution"]
    if not wanted or not yf_facts.version_at_least(facts["version"], facts["thop_distribution_since"]):
        return None
    spec = importlib.util.find_spec("thop")
    if spec is None or not spec.origin:
        return {"name": "thop", "message": "thop is not installed: the target reports 0 GFLOPs for every model",
                "fix": f"{sys.executable} -m pip install {wanted}"}
    owners = thop_owners(Path(spec.origin).resolve())
    if normalized(wanted) in map(normalized, owners):
        return None
    return {"name": "thop",
            "message": f"the thop Python imports ({Path(spec.origin).parent}) comes from "
                       f"{' and '.join(owners) or 'no installed distribution'}, not {wanted}: the target's get_flops "
                       "may report 0 GFLOPs for every model, stock ones included",
            "fix": f"{sys.executable} -m pip uninstall -y thop && "
                   f"{sys.executable} -m pip install --force-reinstall --no-deps {wanted}"}


def torchvision_ops_load() -> bool:
    """torchvision's compiled ops load into this torch and define ``nms`` (what a torchvision built for another torch
    fails at): known in milliseconds, where ``import torchvision`` costs seconds (it imports torch._dynamo)."""
    import importlib.util

    import torch

    spec = importlib.util.find_spec("torchvision")
    library = next(Path(spec.origin).parent.glob("_C*.so"), None) if spec and spec.origin else None
    try:
        torch.ops.load_library(str(library))
        return hasattr(torch.ops.torchvision, "nms")
    except Exception:  # no library (Windows' .pyd, a source tree) or one built for another torch: import it
        return False


def torchvision_trap() -> dict | None:
    """The targets import torchvision lazily: one built for another torch fails only when a model is built."""
    if torchvision_ops_load():
        return None
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # RuntimeError: operator torchvision::nms does not exist
        return {"name": "torchvision", "message": f"torchvision does not import: {yf_facts.one_line(exc)}",
                "fix": yf_facts.hint_for(exc, "") or f"{sys.executable} -m pip install torchvision"}
    return None


def environment_traps(facts: dict, root: Path, thop: bool = True) -> list[dict]:
    """What breaks after a clean apply because of the environment (call once the checkout imports). ``thop=False``
    leaves out the thop trap (reading every installed distribution's file list): verify names it when GFLOPs are 0,
    the one thing it breaks."""
    return [trap for trap in (ddp_trap(facts, root), thop_trap(facts) if thop else None, torchvision_trap()) if trap]


def missing_requirements(requires: list[str]) -> list[dict]:
    """The requirements this Python lacks, or has at a version outside the specifier."""
    from importlib import metadata

    missing = []
    for requirement in requires:
        name = re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append({"requirement": requirement, "installed": None})
            continue
        try:
            from packaging.requirements import Requirement

            if not Requirement(requirement).specifier.contains(installed, prereleases=True):
                missing.append({"requirement": requirement, "installed": installed})
        except ImportError:  # without packaging, presence is all we can check
            pass
    return missing
