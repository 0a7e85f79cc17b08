"""libcst codemods yamlforge applies to a target checkout: imports, parse_model registration, backbones, FLOPs."""

from .backbone import add_multi_output_support, backbone_registration
from .flops import fix_get_flops
from .imports import add_imports
from .registration import Registration, describe_registration, register_in_parse_model

__all__ = [
    "Registration",
    "add_imports",
    "add_multi_output_support",
    "backbone_registration",
    "describe_registration",
    "fix_get_flops",
    "register_in_parse_model",
]
