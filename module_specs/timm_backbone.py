"""Any timm model as a multi-output detector backbone: ``timm.create_model(name, features_only=True, out_indices=...)``.

A model-YAML row names the timm model and the strides the head reads, e.g.
``- [-1, 1, TimmBackbone, [convnext_atto, [8, 16, 32], {drop_path_rate: 0.1}]]``; the outputs are the feature maps
whose reductions are those strides (the last stage of each reduction), one per stride, NCHW. The third argument
holds ``timm.create_model`` keywords; two of them are ours:

- ``pretrained: true`` loads timm's own weights through timm's loader and cache;
- ``pretrained_file: PATH`` loads a local checkpoint of that model through timm's ``pretrained_cfg_overlay``.

A saved detector checkpoint pickles this layer as (name, strides, options, tensors), never timm's own classes, so
loaders that accept only the target's layers (``ULTRALYTICS_SAFE_LOAD=1``) read it, and loading it downloads nothing.

This file is standalone (torch + timm + stdlib only): yamlforge copies it verbatim into the target checkout.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

__all__ = ("TimmBackbone",)

OURS = ("pretrained", "pretrained_file")  # options this wrapper reads; the rest go to timm.create_model as given


def timm_options(options: dict | None) -> dict:
    """``create_model`` keywords from the row's options: ``pretrained_file`` becomes timm's
    ``pretrained_cfg_overlay``."""
    kwargs = dict(options or {})
    path = kwargs.pop("pretrained_file", None)
    if path:
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    return kwargs


def stage_indices(model: str, strides, kwargs: dict) -> list[int]:
    """The ``out_indices`` whose reductions are ``strides`` (the last stage of each), read from a model built on the
    meta device: no memory, no weights, milliseconds."""
    import timm

    probe_kwargs = {k: v for k, v in kwargs.items() if k not in ("pretrained", "pretrained_cfg_overlay")}
    with torch.device("meta"):
        probe = timm.create_model(model, features_only=True, **probe_kwargs)
    reductions = list(probe.feature_info.reduction())
    # the model's own numbering of its feature maps: DLA's default maps are its levels 1-5, not 0-4
    numbers = list(probe.feature_info.out_indices)
    indices = []
    for stride in strides:
        found = [i for i, r in enumerate(reductions) if r == stride]
        if not found:
            raise ValueError(f"TimmBackbone: {model} has no feature map at stride {stride} (its reductions: "
                             f"{reductions}); YAML args are [timm model name, strides, {{create_model options}}]")
        indices.append(numbers[found[-1]])
    return indices


class _LoadReport(logging.Handler):
    """What timm's loader reports as missing: it loads a features_only model's weights non-strictly and only logs
    the keys a checkpoint lacks, so a file of another model would otherwise leave the backbone random."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.missing: list[str] = []
        self.logger = logging.getLogger("timm.models._builder")

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Missing keys ("):  # 'Missing keys (a, b) discovered while loading pretrained weights.'
            self.missing.extend(message.removeprefix("Missing keys (").partition(") discovered")[0].split(", "))

    def lacking(self, body: nn.Module) -> list[str]:
        """The missing keys the backbone holds (not the classifier features_only drops); timm's stage names join
        nested modules with '_'."""
        held = {key.replace(".", "_") for key in body.state_dict()}
        return [key for key in self.missing if key.replace(".", "_") in held]

    def __enter__(self):
        self.level_was = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level_was)


class TimmBackbone(nn.Module):
    """A timm model's feature maps at ``strides``, as a list (NCHW); ``width_list`` gives their channels."""

    def __init__(self, c1: int = 3, model: str = "resnet18", strides=[8, 16, 32], options={}):  # noqa: B006 - as the spec lists them; read only
        super().__init__()
        import timm

        if not isinstance(model, str) or not isinstance(strides, (list, tuple)) or not strides:
            raise ValueError(f"TimmBackbone: bad args {model!r}, {strides!r}; YAML args are [timm model name, "
                             "strides, {create_model options}], e.g. [resnet18, [8, 16, 32], {}]")
        self.config = (int(c1), model, [int(s) for s in strides], dict(options or {}))
        kwargs = timm_options(options)
        if c1 != 3:
            kwargs["in_chans"] = c1
        indices = stage_indices(model, self.config[2], kwargs)
        with _LoadReport() as report:
            try:
                self.body = timm.create_model(model, features_only=True, out_indices=indices, **kwargs)
            except RuntimeError as exc:  # tensors of other shapes: torch lists every one
                raise ValueError(f"TimmBackbone: the weights do not load into {model}: {str(exc).splitlines()[0]}"
                                 ) from None
        lacking = report.lacking(self.body)
        if lacking and "pretrained_cfg_overlay" in kwargs:
            raise ValueError(f"TimmBackbone: {kwargs['pretrained_cfg_overlay']['file']} does not load into {model}: "
                             f"{len(lacking)} of its tensors are not in the file (e.g. {', '.join(lacking[:3])})")
        self.width_list = list(self.body.feature_info.channels())
        self.strides = list(self.body.feature_info.reduction())
        self.channels_last = str(getattr(self.body, "output_fmt", "NCHW")).endswith("NHWC")  # Swin-like stages
        # timm's own in-place choices: targets' weight init makes every ReLU/SiLU/Hardswish in-place, which breaks
        # models that activate a view (EfficientViT's split q/k/v); forward puts timm's choice back
        self._timm_inplace = [(m, m.inplace) for m in self.body.modules()
                              if isinstance(getattr(m, "inplace", None), bool)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        for module, inplace in self._timm_inplace:
            module.inplace = inplace
        features = self.body(x)
        if self.channels_last:
            features = [f.permute(0, 3, 1, 2) for f in features]
        return list(features)

    # ---------------------------------------------------------------- pickling without timm's classes

    def __reduce__(self):
        """Rebuilt from (c1, name, strides, options without weights to fetch) and filled from its own tensors."""
        c1, model, strides, options = self.config
        options = {k: v for k, v in options.items() if k not in OURS}
        attrs = {k: v for k, v in vars(self).items()
                 if not k.startswith("_") and isinstance(v, (bool, int, float, str, list, tuple, type(None)))}
        return type(self), (c1, model, strides, options), {"yamlforge_timm": True, "tensors": self.state_dict(),
                                                           "attrs": attrs}

    def __setstate__(self, state):
        if isinstance(state, dict) and state.get("yamlforge_timm"):
            self.load_state_dict(state["tensors"])
            vars(self).update(state["attrs"])
            return
        super().__setstate__(state)

    def __deepcopy__(self, memo):
        """A plain attribute-wise deep copy (what deepcopy does without ``__reduce__``): no rebuild through timm."""
        import copy

        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in vars(self).items():
            object.__setattr__(new, key, copy.deepcopy(value, memo))
        return new
