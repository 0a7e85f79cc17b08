"""Official-weights mapping (``yamlforge.weights``): renames, shape checks, the report, checkpoint unwrapping."""

from __future__ import annotations

import pytest
from test_specs import GOOD, write_spec

from yamlforge.errors import YamlforgeError
from yamlforge.resources import SPECS_DIR
from yamlforge.specs import load_spec
from yamlforge.weights import parse_official, unwrap_checkpoint


def fail(key, message):
    return YamlforgeError(message, where=key)


BRA_LIKE = parse_official(
    {
        "source": "somewhere",
        "kwargs": {"dim": "dim", "auto_pad": None},
        "keys": [[r"^qkv\.qkv\.", "qkv."], [r"^wo\.", "proj."]],
        "reshape": [r"^(qkv|proj)\.weight$"],
    },
    fail,
)
OURS = {"qkv.weight": (6, 2, 1, 1), "qkv.bias": (6,), "proj.weight": (2, 2, 1, 1), "proj.bias": (2,)}
OFFICIAL = {"qkv.qkv.weight": (6, 2), "qkv.qkv.bias": (6,), "wo.weight": (2, 2), "wo.bias": (2,)}


RENAMES = [
    ("first-rule", BRA_LIKE, "qkv.qkv.weight", "qkv.weight"),
    ("second-rule", BRA_LIKE, "wo.bias", "proj.bias"),
    ("no-rule-keeps-name", BRA_LIKE, "lepe.weight", "lepe.weight"),
    ("anchored-rule-needs-prefix", BRA_LIKE, "x.wo.bias", "x.wo.bias"),
]


@pytest.mark.parametrize("mapping,official,ours", [r[1:] for r in RENAMES], ids=[r[0] for r in RENAMES])
def test_rename(mapping, official, ours):
    assert mapping.rename(official) == ours


def test_first_matching_rule_wins_and_groups_carry_over():
    revcol = load_spec(SPECS_DIR / "revcol.yaml").official
    assert revcol.rename("subnet2.alpha3") == "columns.2.levels.3.alpha"
    assert revcol.rename("subnet1.level0.fusion.up.channel_reschedule.1.bias") == "columns.1.levels.0.up.norm.bias"
    assert revcol.rename("subnet0.level1.fusion.down.0.weight") == "columns.0.levels.1.down.0.weight"
    assert revcol.rename("subnet0.level1.blocks.0.gamma") == "columns.0.levels.1.blocks.0.gamma"
    assert revcol.rename("stem.0.weight") == "stem.0.weight"


def test_complete_match_declares_the_linear_to_conv_reshapes():
    report = BRA_LIKE.match(OFFICIAL, OURS)
    assert report.complete
    assert report.matched == {
        "qkv.weight": "qkv.qkv.weight",
        "qkv.bias": "qkv.qkv.bias",
        "proj.weight": "wo.weight",
        "proj.bias": "wo.bias",
    }
    assert report.reshape == {"qkv.weight": (6, 2, 1, 1), "proj.weight": (2, 2, 1, 1)}


def test_report_lists_missing_unexpected_and_mismatched():
    official = {"qkv.qkv.weight": (6, 2), "wo.weight": (3, 2), "extra.bias": (2,)}
    report = BRA_LIKE.match(official, OURS)
    assert not report.complete
    assert report.matched == {"qkv.weight": "qkv.qkv.weight"}
    assert report.missing == ("qkv.bias", "proj.bias")
    assert report.unexpected == ("extra.bias",)
    assert report.mismatched == {"proj.weight": ((3, 2), (2, 2, 1, 1))}


def test_reshape_only_where_declared():
    """Same element count is not enough: an undeclared shape change is a mismatch."""
    report = BRA_LIKE.match({"lepe.weight": (4,)}, {"lepe.weight": (2, 2)})
    assert report.mismatched == {"lepe.weight": ((4,), (2, 2))} and not report.matched


def test_two_official_keys_for_one_of_ours_leaves_the_second_unexpected():
    report = BRA_LIKE.match({"wo.bias": (2,), "proj.bias": (2,)}, {"proj.bias": (2,)})
    assert report.matched == {"proj.bias": "wo.bias"} and report.unexpected == ("proj.bias",)


class Tensor:
    """Just enough of a tensor for the mapping: a shape and ``reshape``."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def reshape(self, shape):
        return Tensor(shape)


def test_state_dict_renames_and_reshapes_what_was_matched():
    official = {key: Tensor(shape) for key, shape in OFFICIAL.items()}
    mapped = BRA_LIKE.match(OFFICIAL, OURS).state_dict(official)
    assert {key: t.shape for key, t in mapped.items()} == OURS
    assert mapped["qkv.bias"] is official["qkv.qkv.bias"]


def test_constructor_kwargs_renames_and_drops_null():
    revcol = load_spec(SPECS_DIR / "revcol.yaml").official
    assert revcol.constructor_kwargs({"num_subnet": 3, "channels": [1, 2, 3, 4]}) == {
        "num_columns": 3,
        "channels": [1, 2, 3, 4],
    }
    assert BRA_LIKE.constructor_kwargs({"dim": 64, "auto_pad": True}) == {"dim": 64}


def test_constructor_kwargs_rejects_an_unmapped_official_argument():
    with pytest.raises(YamlforgeError, match="qk_scale have no entry in the spec's official.kwargs"):
        BRA_LIKE.constructor_kwargs({"dim": 64, "qk_scale": 0.1})


WEIGHT = Tensor((2,))


class Module:
    def state_dict(self):
        return {"module.a": WEIGHT}


CHECKPOINTS = [
    ("plain", {"a": WEIGHT}),
    ("state-dict-wrapper", {"state_dict": {"a": WEIGHT}, "epoch": 3}),
    ("model-wrapper", {"model": {"a": WEIGHT}, "optimizer": None}),
    ("model-object", {"model": Module()}),
    ("ddp-prefix", {"state_dict": {"module.a": WEIGHT}}),
    ("nested", {"model": {"state_dict": {"a": WEIGHT}}}),
    ("ultralytics-ema", {"model": None, "ema": Module(), "epoch": -1}),
]


@pytest.mark.parametrize("checkpoint", [c[1] for c in CHECKPOINTS], ids=[c[0] for c in CHECKPOINTS])
def test_unwrap_checkpoint(checkpoint):
    assert unwrap_checkpoint(checkpoint) == {"a": WEIGHT}


@pytest.mark.parametrize(
    "checkpoint",
    [[1, 2], {}, {"model": None}, {1: WEIGHT}, {"a": 1}],
    ids=["list", "empty", "only-none", "int-keys", "not-tensors"],
)
def test_unwrap_checkpoint_without_state_dict_is_one_error(checkpoint):
    with pytest.raises(YamlforgeError, match="holds no state_dict"):
        unwrap_checkpoint(checkpoint)


BAD_OFFICIAL = [
    ("no-source", "  keys: []\n", "mapping with 'source'"),
    ("bad-source", "  source: [x]\n", "'official.source' names the official repository"),
    ("unknown-field", "  source: x\n  colour: red\n", "mapping with 'source'"),
    ("bad-class", "  source: x\n  class: 3\n", "'official.class' names our class .*, got 3"),
    ("bad-kwargs", "  source: x\n  kwargs: {dim: 1}\n", "'official.kwargs'"),
    ("bad-rule", "  source: x\n  keys: [[a]]\n", "'official.keys'"),
    ("bad-regex", "  source: x\n  keys: [['(', b]]\n", "bad regex '\\('"),
    ("bad-reshape", "  source: x\n  reshape: x\n", "'official.reshape'"),
]


@pytest.mark.parametrize("body,message", [b[1:] for b in BAD_OFFICIAL], ids=[b[0] for b in BAD_OFFICIAL])
def test_bad_official_section_is_one_error_at_its_line(tmp_path, body, message):
    path = write_spec(tmp_path, GOOD + "official:\n" + body)  # official: is line 10, its mapping starts on 11
    with pytest.raises(YamlforgeError, match=message) as caught:
        load_spec(path)
    assert caught.value.where == f"{path}:11"


def test_bundled_specs_with_official_code_declare_their_mapping():
    for stem in ("shsa", "biformer", "revcol"):
        official = load_spec(SPECS_DIR / f"{stem}.yaml").official
        assert official is not None and official.source, stem
