"""libcst codemods yamlforge applies to a target checkout: imports, parse_model registration, backbones, FLOPs."""

from .backbone import MULTI_OUTPUT_EDITS, add_multi_output_support, backbone_registration
from .base import Edit, edit_code
from .flops import fix_get_flops
from .imports import add_imports, import_edits
from .registration import Registration, describe_registration, register_in_parse_model, registration_edits

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
