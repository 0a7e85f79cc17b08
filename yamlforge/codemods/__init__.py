"""libcst codemods yamlforge applies to a target checkout: imports, parse_model registration, backbones, FLOPs.

The backbone and FLOPs edits import ``libcst.matchers`` (as long to import as libcst itself): they load on first
use, so applying layer modules never pays for it.
"""

from importlib import import_module

from .base import Edit, edit_code
from .imports import add_imports, import_edits
from .registration import Registration, describe_registration, register_in_parse_model, registration_edits

_LAZY = {
    "MULTI_OUTPUT_EDITS": "backbone",
    "add_multi_output_support": "backbone",
    "backbone_registration": "backbone",
    "fix_get_flops": "flops",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MULTI_OUTPUT_EDITS",
    "Edit",
    "Registration",
    "add_imports",
    "add_multi_output_support",
    "backbone_registration",
    "describe_registration",
    "edit_code",
    "fix_get_flops",
    "import_edits",
    "register_in_parse_model",
    "registration_edits",
]
