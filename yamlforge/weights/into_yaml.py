"""gen-yaml's ``--base-weights``: checked before the YAML is written, loaded into it (``weights --base``) after."""

from __future__ import annotations

from pathlib import Path

from ..errors import YamlforgeError


def base_weights_output(model: Path) -> Path:
    """Where the checkpoint goes: next to the YAML (``rtdetr-l-SHSA.yaml`` -> ``rtdetr-l-SHSA.pt``)."""
    return model.with_suffix(".pt")


def check_base_weights(base_weights: Path | None, model: Path, *, dry_run: bool, force: bool) -> None:
    """Before anything is written: a checkpoint file, a run that writes the YAML, no checkpoint overwritten."""
    if base_weights is None:
        return
    if dry_run or not base_weights.is_file():
        raise YamlforgeError("--base-weights loads into the written YAML, so it needs the file written" if dry_run
                             else f"checkpoint '{base_weights}' does not exist", where="--base-weights")
    if base_weights_output(model).exists() and not force:
        raise YamlforgeError(f"'{base_weights_output(model)}' exists; nothing was written", where="--base-weights",
                             hint="pass --force to overwrite it")


def load_base_weights(model: Path, root: Path, base_weights: Path, *, python: str | None):
    """``yamlforge weights --base`` into the YAML gen-yaml wrote, written to :func:`base_weights_output`."""
    from ..targets import detect_target
    from .load import load_weights

    return load_weights(model, detect_target(root), [], base_weights_output(model), base=base_weights, python=python)
