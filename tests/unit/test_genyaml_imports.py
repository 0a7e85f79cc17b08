"""What a gen-yaml process imports: none of the libraries and command folders only other commands need.

gen-yaml's speed budget (benchmarks/gen_yaml.py: within 1.5x of python + typer + ruamel) has no room for them;
libcst alone costs about as much as all of gen-yaml's own work. Checked in a fresh interpreter, without timing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from yamlforge.patch.plan import plan_apply
from yamlforge.patch.writer import write_changeset
from yamlforge.specs import SpecRegistry
from yamlforge.targets import detect_target

# Only other commands use these: apply (libcst, jinja2), verify and friends (torch, rich), graph (graphviz).
HEAVY = ("torch", "libcst", "jinja2", "rich", "graphviz")
OTHER_COMMANDS = ("yamlforge.adopt", "yamlforge.check", "yamlforge.patch.codemods", "yamlforge.patch.plan",
                  "yamlforge.catalog", "yamlforge.scratch")
RUN = """\
import json, sys
from yamlforge.cli import app
code = app(sys.argv[2:], standalone_mode=False)
json.dump({"exit": code or 0, "modules": sorted(sys.modules)}, open(sys.argv[1], "w"))
"""


@pytest.fixture(scope="module")
def shsa_repo(checkout_factory):
    """An 8.4.190 checkout with SHSA applied: gen-yaml then reads the manifest and the module's spec."""
    root = checkout_factory("ultralytics", "8.4.190")
    registry = SpecRegistry()
    write_changeset(plan_apply(detect_target(root), [registry.get("SHSA")], registry).changeset)
    return root


@pytest.mark.parametrize("args", [
    ["rtdetr-l", "--insert-after", "3=SHSA"],
    ["yolov8n", "--insert-after", "15=SHSA", "--remove", "9", "--allow-stride-change", "--dry-run"],
], ids=["write", "dry-run"])
def test_gen_yaml_imports_nothing_only_other_commands_need(shsa_repo, tmp_path, args):
    report = tmp_path / "imports.json"
    out = tmp_path / "out.yaml"
    done = subprocess.run([sys.executable, "-c", RUN, str(report), "gen-yaml", *args, "--repo", str(shsa_repo),
                           "-o", str(out)], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(report.read_text())
    assert result["exit"] == 0, done.stderr
    assert out.is_file() != ("--dry-run" in args), done.stderr  # the call did what it says
    imported = [m for m in result["modules"] if m.split(".")[0] in HEAVY or m.startswith(OTHER_COMMANDS)]
    assert imported == []
