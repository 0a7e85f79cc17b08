"""adopt: a width-like --set value that runs at one width only becomes a relation to the width (issue 30).

The probes run in this venv's Python, as test_adopt.py's do; the decision rows need no torch.
"""

from __future__ import annotations

import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from yamlforge.adopt import decision, rendering
from yamlforge.adopt import engine as adopt
from yamlforge.errors import YamlforgeError

SANDGLASS = Path(__file__).resolve().parents[1] / "fixtures" / "adopt" / "paper" / "sandglass.py"
TIED = "--set hidden_dim={value} runs only at inp={width}: hidden_dim follows the width instead"


def sandglass_raw(**changes) -> dict:
    """The runner's answer for sandglass.py's Block probed with hidden_dim tied to twice the width."""
    params = [{"name": "inp", "kind": "POSITIONAL_OR_KEYWORD"}, {"name": "hidden_dim", "kind": "POSITIONAL_OR_KEYWORD"},
              {"name": "oup", "kind": "POSITIONAL_OR_KEYWORD"},
              {"name": "kernel_size", "kind": "POSITIONAL_OR_KEYWORD", "value": 3}]
    return {"class": "Block", "ok": True, "role": "layer", "rule": "equal", "layout": "nchw", "stride": "1",
            "multiple": 1, "in_arg": "inp", "out_arg": "oup", "sizes": [20, 40], "params": params,
            "derived": {"hidden_dim": [2, 1]}, **changes}


def test_a_tied_set_value_becomes_the_relation_not_a_fixed_value():
    d = decision.decide(sandglass_raw(), {"hidden_dim": 128})
    assert d.adapter_reasons[0] == TIED.format(value=128, width=64)
    assert (d.fixed, d.derived, d.constraints) == ({}, {"hidden_dim": Fraction(2)},
                                                   {"relations": ["hidden_dim = 2 * inp"]})
    assert d.rule == "keep"  # inp == oup: the adapter takes the width once
    assert rendering._adapter_signature(d) == (", c1, kernel_size=3",
                                               "inp=c1, oup=c1, hidden_dim=2 * c1, kernel_size=kernel_size")


def test_a_derived_argument_without_a_set_value_says_nothing_of_one():
    d = decision.decide(sandglass_raw(), {})
    assert not any(reason.startswith("--set") for reason in d.adapter_reasons)


@pytest.mark.parametrize(("value", "width"), [(128, 64), (96, 48)])
def test_a_set_value_twice_the_one_width_it_runs_at_is_tied_to_the_width(value, width):
    result = adopt.adopt(SANDGLASS, "Block", sets=[f"hidden_dim={value}"], write=False)
    assert result.decision.derived == {"hidden_dim": Fraction(2)}
    assert TIED.format(value=value, width=width) in result.notes
    assert result.name == "SandglassBlock"


def test_a_set_value_no_multiple_of_a_width_explains_is_still_refused():
    with pytest.raises(YamlforgeError, match="forward failed in every layout"):  # 101 is twice no width
        adopt.adopt(SANDGLASS, "Block", sets=["hidden_dim=101"], write=False)


def test_a_set_value_the_class_runs_with_at_every_width_stays_fixed(tmp_path):
    source = tmp_path / "fixed_hidden.py"
    source.write_text(textwrap.dedent("""
        import torch.nn as nn


        class FixedHidden(nn.Module):
            def __init__(self, dim, hidden_dim):
                super().__init__()
                self.up, self.down = nn.Conv2d(dim, hidden_dim, 1), nn.Conv2d(hidden_dim, dim, 1)

            def forward(self, x):
                return x + self.down(self.up(x))
    """))
    result = adopt.adopt(source, "FixedHidden", sets=["hidden_dim=64"], write=False)
    assert result.decision.derived == {}
    assert [(a.name, a.value) for a in result.decision.args] == [("hidden_dim", 64)]
