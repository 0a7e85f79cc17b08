"""What `yamlforge list` and `yamlforge show` say about module specs (no checkout involved)."""

from __future__ import annotations

from .resources import render
from .specs import ModuleSpec, SpecRegistry


def spec_rows(registry: SpecRegistry) -> list[dict]:
    """One plain dict per spec, for the table and for ``--json``."""
    return [
        {
            "name": s.name,
            "summary": s.summary,
            "paper": s.paper,
            "role": s.role,
            "channels": s.channels,
            "stride": [s if isinstance(s, int) else str(s) for s in s.output_strides],  # "1/2": an upsampler
            "exports": list(s.exports),
            "requires": list(s.requires),
            "bundled": s.bundled,
        }
        for s in registry
    ]


def yaml_args(spec: ModuleSpec) -> str:
    """The YAML args a user writes (required ones as placeholders, defaults omitted)."""
    return ", ".join(f"<{a.name}>" for a in spec.args if a.required)


def describe(spec: ModuleSpec) -> str:
    return render("show.txt.j2", spec=spec, yaml_args=yaml_args(spec), registration=registration_text(spec))


def registration_text(spec: ModuleSpec) -> str:
    """The parse_model change the spec's channel rule makes, as the user will see it in the diff."""
    from .patch import codemods
    from .patch.plan import registrations

    lines = []
    for reg in registrations([spec]):
        lines.append(codemods.describe_registration(reg))
    return "\n".join(lines)
