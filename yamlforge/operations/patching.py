"""apply and revert as the CLI and the demo run them: plan (with apply's checks), then validate or write.

The planner, the writer and the probes are imported inside the functions, as the CLI does: a command that needs
none of them (list, --help) does not load libcst, and each call reads them from their own modules.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import YamlforgeError

if TYPE_CHECKING:
    from ..patch.plan import Plan
    from ..targets import Target


@dataclass
class PatchRun:
    """A planned apply or revert of one checkout; ``probe`` is the model ``apply --verify`` builds once written."""

    target: Target
    plan: Plan
    modules: list[str] = field(default_factory=list)  # the specs applied, by name: what an undo reverts
    probe: str | None = None
    probe_scope: str | None = None  # the task the probe proves the modules in, in one line
    python: str | None = None  # the resolved --python of the probe

    def preview(self) -> str:
        """Validate the changes as a write would; their diff of the checkout's code (nothing under .yamlforge/)."""
        self.plan.changeset.validate()
        return self.plan.code_diff()

    @property
    def changes_anything(self) -> bool:
        return bool(self.plan.changeset.effective)

    def write(self) -> None:
        from ..patch.writer import write_changeset

        write_changeset(self.plan.changeset)


def plan_apply_run(repo: Path, modules: list[str], spec_paths: list[Path], *, fixes: Sequence[str] = (),
                   fuse: Sequence[str] = (), fuse_at: str | None = None, python: str | None = None,
                   verify: bool = False) -> PatchRun:
    """Apply's plan: the modules (default: the ``--spec`` files' own), their channel rules probed first (hand-written
    specs only), the probe's notes added; with ``verify`` the probe model, built before anything is written."""
    from ..adopt.rulecheck import check_channel_rules
    from ..patch.plan import plan_apply
    from ..specs import SpecRegistry, load_spec
    from ..targets import detect_target

    target = detect_target(repo)
    registry = SpecRegistry(spec_paths)
    names = list(modules) or [load_spec(p).name for p in spec_paths]
    if not names and not fixes:
        raise YamlforgeError("nothing to apply", where="--module", hint="yamlforge apply --repo PATH --module SHSA")
    specs = [registry.get(n) for n in names]
    probe_notes = check_channel_rules(specs, python)  # before the lock: probing takes seconds
    plan = plan_apply(target, specs, registry, fixes=list(fixes), fuse=list(fuse), fuse_at=fuse_at)
    plan.notes += probe_notes
    run = PatchRun(target, plan, list(dict.fromkeys(s.name for s in specs)), python=python)
    if verify:
        from ..check.probe import probe_names, probe_scope, probe_yaml
        from ..target_python import resolve_python

        run.probe = probe_yaml(target, probe_names(names, registry))  # before writing: a bad probe changes nothing
        run.python = resolve_python(python)  # so does an unknown --python
        run.probe_scope = probe_scope(run.modules)
    return run


def plan_revert_run(repo: Path, spec_paths: list[Path], modules: list[str]) -> PatchRun:
    """Revert's plan: the given modules (default: everything yamlforge applied)."""
    from ..patch.plan import plan_revert
    from ..specs import SpecRegistry
    from ..targets import detect_target

    target = detect_target(repo)
    return PatchRun(target, plan_revert(target, SpecRegistry(spec_paths), list(modules) or None))


@contextmanager
def probe_file(probe: str) -> Iterator[Path]:
    """The probe model written to a temporary folder, for as long as the ``with`` lasts."""
    from ..check.probe import write_probe

    with tempfile.TemporaryDirectory(prefix="yamlforge-probe-") as folder:
        yield write_probe(probe, Path(folder))
