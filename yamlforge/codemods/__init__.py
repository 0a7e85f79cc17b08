"""libcst codemods yamlforge applies to a target checkout: imports, parse_model registration, backbones, FLOPs."""

from .backbone import add_multi_output_support, add_multi_output_support_to_module, backbone_registration
from .flops import fix_get_flops, fix_get_flops_in_module
from .imports import add_imports, add_imports_to_module, parse_code
from .registration import Registration, describe_registration, register_in_module, register_in_parse_model

__all__ = [
    "Registration",
    "add_imports",
    "add_imports_to_module",
    "add_multi_output_support",
    "add_multi_output_support_to_module",
    "backbone_registration",
    "describe_registration",
    "fix_get_flops",
    "fix_get_flops_in_module",
    "parse_code",
    "register_in_module",
    "register_in_parse_model",
]
