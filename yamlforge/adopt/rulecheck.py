"""Checks the channel rule a hand-written spec declares against its code, with adopt's probe, before apply writes.

A spec saying ``channels: keep`` for ``Block(no_spatial=False)`` builds ``Block(64)``: ``no_spatial=64``, silently
the wrong module, and verify cannot notice. Probing builds the class in the target's Python (a subprocess, with a
timeout, as adopt does) and compares what decides the output width with what the spec says. Bundled specs are
tested, so they are not probed; nor are rules the probe cannot decide (custom branches, backbones).
"""

from __future__ import annotations

from ..errors import YamlforgeError
from ..specs import ModuleSpec, field_error

PROBED_RULES = ("keep", "in_out", "none")
FOUND = {  # what probing found, in words, by the rule the runner reports
    "keep": "the output width follows its first argument (channels: keep)",
    "in_out": "a second argument sets the output width (channels: in_out)",
    "none": "no constructor argument sets the width (channels: none)",
    "ratio": "the output width is a fixed multiple of its first argument (channels: custom)",
    "equal": "it runs only with its output width equal to its input width (channels: custom, the width passed twice)",
}


def check_channel_rules(specs: list[ModuleSpec], python: str | None) -> list[str]:
    """Refuse a spec whose declared ``channels`` its code contradicts; notes for exports that could not be probed."""
    specs = [s for s in specs if not s.bundled and s.role == "layer" and s.channels in PROBED_RULES]
    if not specs:
        return []
    from ..target_python import resolve_python
    from . import source as adopt_source  # not at the top: only hand-written specs need them (libcst, subprocess)
    from .probing import probe

    python = resolve_python(python)
    notes = []
    for spec in specs:
        source = adopt_source.load_source(spec.source)
        classes = [c for c in adopt_source.module_classes(source) if c.name in spec.exports]
        found = probe(source, list({c.name: c for c in reversed(classes)}.values()), {}, python)
        for name, raw in sorted(found.items()):
            if raw["ok"]:
                _compare(spec, raw)
                if raw.get("constraints") and spec.constraints is None:
                    notes.append(f"{name} builds only at some widths ({raw['constraints']}): add 'constraints: "
                                 f"{raw['constraints']}' to {spec.spec_path.name} so gen-yaml checks them")
            elif raw.get("no_torch"):
                raise YamlforgeError(f"{python} cannot import torch, so the channel rule of {spec.name} cannot be "
                                     "checked", where="--python", hint="--python PATH  # your training venv's python")
            else:
                notes.append(f"channels: {spec.channels} of {name} not checked: {raw['error']}")
    return notes


def _compare(spec: ModuleSpec, raw: dict) -> None:
    if raw["role"] != "layer" or raw["rule"] == spec.channels:
        return
    hint = f"yamlforge adopt {spec.source}{'/' if spec.is_package else ''}::{raw['class']}  # writes the spec " \
           "from what probing finds"
    raise field_error(spec, "channels", f"{spec.name} declares channels: {spec.channels}, but probing "
                                        f"{raw['class']} found {FOUND[raw['rule']]}; nothing was changed", hint=hint)
