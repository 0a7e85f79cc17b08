"""The module resolver: which module names a model YAML may use in a checkout, the spec behind each, and its args."""

from __future__ import annotations

import difflib
from typing import Any

from ..errors import YamlforgeError
from .edits import LayerEdit, parse_value, yaml_text

TORCH_PREFIXES = ("nn.", "torch.nn.", "torchvision.ops.")  # modules parse_model takes from torch itself


class ModuleResolver:
    """Which module names a YAML may use in this checkout, and what spec (if any) stands behind each."""

    def __init__(self, target, spec_paths):
        self.target = target
        self.spec_paths = spec_paths
        self._registry = None
        self._applied: set[str] | None = None

    @property
    def applied_names(self) -> set[str]:
        if self._applied is None:
            from ..patch.lock import recover_interrupted
            from ..patch.manifest import read_manifest

            recover_interrupted(self.target.root)  # a half-written apply is rolled back before its manifest is read
            manifest = read_manifest(self.target.root)
            self._applied = manifest.applied_names if manifest else set()
        return self._applied

    @property
    def registry(self):
        if self._registry is None:
            from ..specs import SpecRegistry

            self._registry = SpecRegistry(list(self.spec_paths))
        return self._registry

    def spec_behind(self, name: str):
        """The spec a YAML module name stands for in this checkout; None for torch's and the target's own layers.

        Only a spec name makes yamlforge read tasks.py here: when the spec is not applied, a target class of the same
        name is the one parse_model finds.
        """
        if name.startswith(TORCH_PREFIXES):
            return None
        spec = self.registry.find(name)
        if spec is None or name not in self.applied_names and name in self.target.known_layers:
            return None
        return spec

    def outputs(self, name: str, args: list | None = None) -> int:
        """Index slots a row takes: the number of outputs of a backbone-role spec (for its ``args``), else 1."""
        spec = self.spec_behind(name)
        return len(spec.strides_of(args)) if spec is not None and spec.role == "backbone" else 1

    def resolve_backbone(self, name: str, option: str):
        """(YAML name, spec) of a backbone-role spec; anything else is an error naming ``option``."""
        spec = self.registry.find(name)
        backbones = sorted(e for s in self.registry if s.role == "backbone" for e in s.exports)
        if spec is None:
            what = "a layer of the target" if name in self.target.known_layers else "not a module yamlforge knows"
            close = difflib.get_close_matches(name, backbones, n=3, cutoff=0.6)
            raise YamlforgeError(f"'{name}' is {what}; --backbone takes a backbone module"
                                 + (f"; did you mean {', '.join(close)}?" if close else ""), where=option,
                                 hint=f"backbone modules: {', '.join(backbones)}" if backbones else None)
        if spec.role != "backbone":
            raise YamlforgeError(f"{spec.name} is a {spec.role} module; --backbone takes a backbone module "
                                 f"({', '.join(backbones)})", where=option,
                                 hint=f"--insert-after N={name} or --replace N={name} adds a layer")
        return (name if name in spec.exports else spec.exports[0]), spec

    def resolve(self, name: str, option: str, *, in_base: bool = False):
        """(YAML name, spec or None); an unknown module is an error naming ``option``.

        ``in_base``: a module already in the base, where a backbone-role module is a row like any other.
        """
        spec = self.spec_behind(name)
        if spec is not None:
            if spec.role != "layer" and not in_base:
                raise YamlforgeError(f"{spec.name} is a {spec.role} module; layer edits take layer modules",
                                     where=option, hint=f"--backbone {name} swaps the whole backbone section")
            return (name if name in spec.exports else spec.exports[0]), spec
        if name.startswith(TORCH_PREFIXES) or name in self.target.known_layers:
            return name, None
        names = sorted(set(self.target.known_layers) | {s.name for s in self.registry})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        raise YamlforgeError(f"unknown module '{name}'" + (f"; did you mean {', '.join(close)}?" if close else ""),
                             where=option, hint="yamlforge list  # modules yamlforge can add; nn.* names are torch's")

    def check_applied(self, spec, option: str) -> None:
        """A spec module builds only in a checkout yamlforge applied it to; the error gives the command that does."""
        if not {spec.name, *spec.exports} & self.applied_names:
            raise YamlforgeError(f"module {spec.name} is not applied to this checkout, so {self.target.label} "
                                 "cannot build it", where=option,
                                 hint=f"yamlforge apply --repo {self.target.root} --module {spec.name}")


def edit_args(edit: LayerEdit, spec) -> tuple[list[Any], str]:
    """The YAML args list (values and text): given ones, then the spec's defaults for the rest. The args are those
    of the export the edit names (``revcol_custom`` takes more than ``revcol_tiny``)."""
    spec_args = spec.args_for(edit.module) if spec is not None else ()
    if not spec_args:
        if any(name for name, _ in edit.args):
            raise YamlforgeError(f"named args need a module spec that names them; {edit.module} has none",
                                 where=edit.option)
        texts = [text for _, text in edit.args]
    else:
        texts = _bind_spec_args(edit, spec, spec_args)
    values = [parse_value(t, edit.option) for t in texts]
    return values, f"[{', '.join(texts)}]"


def _bind_spec_args(edit: LayerEdit, spec, spec_args) -> list[str]:
    """The edit's args (positional, then named) in the spec's order, its defaults for those not given."""
    names = [a.name for a in spec_args]
    slots: dict[str, str] = {}
    positional = [text for name, text in edit.args if name is None]
    if len(positional) > len(names):
        raise YamlforgeError(f"{edit.module} takes {len(names)} args ({', '.join(names)}), got {len(positional)}",
                             where=edit.option, hint=f"yamlforge show {spec.name}")
    slots.update(zip(names, positional))
    for name, text in edit.args:
        if name is None:
            continue
        if name not in names:
            raise YamlforgeError(f"{edit.module} has no arg '{name}' (args: {', '.join(names)})",
                                 where=edit.option, hint=f"yamlforge show {spec.name}")
        if name in slots:
            raise YamlforgeError(f"arg '{name}' given twice", where=edit.option)
        slots[name] = text
    texts = []
    for arg in spec_args:
        if arg.name in slots:
            texts.append(slots[arg.name])
        elif arg.required:
            raise YamlforgeError(f"{edit.module} needs arg '{arg.name}'", where=edit.option,
                                 hint=f"yamlforge show {spec.name}")
        else:
            texts.append(yaml_text(arg.default))
    return texts


RESIDUAL_WRAPPER = "ResidualWrap"  # module_specs/residual_wrap.yaml: x + f(x) around a keep-width module


def check_residual(edit: LayerEdit, spec) -> None:
    """``residual:MODULE`` needs x + MODULE(x) to add up: only a layer spec whose channel rule keeps the width."""
    if spec is None or spec.role != "layer" or spec.channels != "keep":
        what = f"is {spec.channels}" if spec is not None else "has no spec saying it keeps its width"
        raise YamlforgeError(f"{edit.module} cannot be residual: x + f(x) needs f to keep the width, and "
                             f"{edit.module} {what}", where=edit.option,
                             hint="yamlforge list  # the 'channels' column shows which modules keep their width")


def residual_args(yaml_name: str, args: list[Any], args_text: str) -> tuple[list[Any], str]:
    """The ResidualWrap row's args: the wrapped module's name, then its own args (parse_model fills the width)."""
    texts = [yaml_name] + ([args_text[1:-1]] if args else [])
    return [yaml_name, *args], f"[{', '.join(texts)}]"
