"""Official weights: the mapping (renames, shape checks, the report, checkpoint unwrapping), ``--load`` parsing,
the runner's fill-or-refuse decision and the ``weights`` command's exits, all without torch or a target."""

from __future__ import annotations

import argparse
import json
import re

import pytest
from test_specs import GOOD, write_spec
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.resources import SPECS_DIR
from yamlforge.runners import weights_runner
from yamlforge.runners.yf_weightmap import MappingError, WeightMap
from yamlforge.specs import SpecRegistry, load_spec
from yamlforge.weights.load import parse_load, parse_official, unwrap_checkpoint


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
    with pytest.raises(MappingError, match="qk_scale have no entry in the spec's official.kwargs"):
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
    with pytest.raises(MappingError, match="holds no state_dict"):
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


# -- what crosses into the target's Python, and the runner's decision ---------------------------------------------


@pytest.mark.parametrize("stem", ["shsa", "biformer", "revcol"])
def test_weight_map_survives_the_json_trip_to_the_runner(stem):
    official = load_spec(SPECS_DIR / f"{stem}.yaml").official
    assert WeightMap.from_dict(json.loads(json.dumps(official.to_dict()))) == official


def test_unused_official_keys_still_fill_the_module():
    """A backbone's classifier head in the checkpoint is reported, not a refusal; a missing key is."""
    extra = BRA_LIKE.match({**OFFICIAL, "head.weight": (10, 2)}, OURS)
    assert extra.filled and not extra.complete and extra.unexpected == ("head.weight",)
    short = BRA_LIKE.match({k: v for k, v in OFFICIAL.items() if k != "wo.bias"}, OURS)
    assert not short.filled and short.missing == ("proj.bias",)


class Layer:
    """A module as the runner sees it: a class name, a state_dict of shaped tensors, load_state_dict."""

    def __init__(self, shapes, children=()):
        self.shapes, self.children, self.loaded = shapes, dict(children), None

    def state_dict(self):
        return {key: Tensor(shape) for key, shape in self.shapes.items()}

    def load_state_dict(self, state):
        self.loaded = state

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.children.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)


class BiLevelRoutingAttention(Layer):
    pass


def bra_model():
    inner = BiLevelRoutingAttention(OURS)
    host = Layer({}, {"attn": inner, "nested": BiLevelRoutingAttention(OURS)})
    return Layer({}, {"model": Layer({}, {"4": BiLevelRoutingAttention(OURS), "6": host})}), inner


def test_runner_finds_every_layer_of_the_class_outermost_first():
    model, _ = bra_model()
    paths = [path for path, _ in weights_runner.module_layers(model, {"BiLevelRoutingAttention"})]
    assert paths == ["model.4", "model.6.attn", "model.6.nested"]


def run_fill(monkeypatch, tmp_path, official_shapes):
    """The runner's fill_and_save on a fake model, with the checkpoint read and the save stubbed out."""
    official = {key: Tensor(shape) for key, shape in official_shapes.items()}
    saved = []
    monkeypatch.setattr(weights_runner, "read_official", lambda path: official)
    monkeypatch.setattr(weights_runner, "save_checkpoint", lambda model, facts, out: saved.append(out))
    monkeypatch.setattr(weights_runner.yf_train, "needs_legacy_load", lambda facts: False)
    model, inner = bra_model()
    load = {"name": "BiLevelRoutingAttention", "checkpoint": "bra.pt", "classes": ["BiLevelRoutingAttention"],
            "map": BRA_LIKE.to_dict()}
    args = argparse.Namespace(load=json.dumps([load]), output=str(tmp_path / "out.pt"))
    report = weights_runner.yf_facts.Report(loads=[], written=None)
    weights_runner.fill_and_save(args, {}, model, report)
    return report.data, saved, inner


def test_runner_fills_every_layer_and_saves_when_all_match(monkeypatch, tmp_path):
    data, saved, inner = run_fill(monkeypatch, tmp_path, OFFICIAL)
    assert saved == [tmp_path / "out.pt"] and data["written"] == str(tmp_path / "out.pt")
    assert {key: t.shape for key, t in inner.loaded.items()} == OURS
    assert [layer["path"] for layer in data["loads"][0]["layers"]] == ["model.4", "model.6.attn", "model.6.nested"]


def test_runner_writes_nothing_for_a_wrong_width_checkpoint(monkeypatch, tmp_path):
    wider = {"qkv.qkv.weight": (12, 4), "qkv.qkv.bias": (12,), "wo.weight": (4, 4), "wo.bias": (4,)}
    data, saved, inner = run_fill(monkeypatch, tmp_path, wider)
    assert saved == [] and data["written"] is None and inner.loaded is None
    assert data["loads"][0]["layers"][0]["mismatched"]["qkv.bias"] == ((12,), (6,))


# -- --load and the command ---------------------------------------------------------------------------------------


BAD_LOADS = [
    ("no-equals", "SHSA", "is not NAME=CHECKPOINT"),
    ("unknown-module", "Nope={ckpt}", "unknown module 'Nope'"),
    ("no-official-mapping", "RIFormerBlock={ckpt}", "RIFormerBlock declares no official weights mapping"),
    ("missing-file", "SHSA={missing}", "checkpoint '.*' does not exist"),
]


@pytest.mark.parametrize("text,message", [b[1:] for b in BAD_LOADS], ids=[b[0] for b in BAD_LOADS])
def test_bad_load_is_one_error_naming_the_option(tmp_path, text, message):
    (tmp_path / "c.pt").write_bytes(b"")
    text = text.format(ckpt=tmp_path / "c.pt", missing=tmp_path / "no.pt")
    with pytest.raises(YamlforgeError, match=message) as caught:
        parse_load(text, SpecRegistry())
    assert caught.value.where.startswith("--load")


def test_load_by_an_export_name_takes_every_export_of_the_module(tmp_path):
    (tmp_path / "c.pt").write_bytes(b"")
    load = parse_load(f"revcol_tiny={tmp_path / 'c.pt'}", SpecRegistry())
    assert load.name == "RevCol" and {"revcol_tiny", "revcol_custom"} <= set(load.classes)


def answer(loads, written=None, checks=()):
    return {"checks": list(checks), "loads": loads, "written": written, "notes": []}


def layer_report(**problems):
    return {"path": "model.5", "index": 5, "class": "SHSA", "matched": {"a": "a"}, "reshape": {}, "missing": [],
            "unexpected": [], "mismatched": {}, **problems}


RUNS = [
    ("filled", answer([{"name": "SHSA", "checkpoint": "/x/shsa.pt", "error": None, "layers": [layer_report()]}],
                      written="OUT"), 0, "create"),
    ("refused", answer([{"name": "SHSA", "checkpoint": "/x/shsa.pt", "error": None,
                         "layers": [layer_report(missing=["conv.weight"])]}]), 1, (
     r"missing: conv.weight\n.*error: shsa.pt fills 1 of the 2 tensors of SHSA at layer 5; 1 tensor\(s\) missing\n"
     r"nothing was written$")),
    ("other-module", answer([{"name": "SHSA", "checkpoint": "/x/bra.pt", "error": None,
                              "layers": [layer_report(matched={}, missing=["a"], unexpected=["wo.bias"])]}]), 1,
     "bra.pt fills 0 of the 1 tensors of SHSA at layer 5; none of its names are SHSA's"),
    ("wrong-width", answer([{"name": "SHSA", "checkpoint": "/x/shsa.pt", "error": None,
                             "layers": [layer_report(mismatched={"b": [[4], [2]]})]}]), 1,
     r"1 tensor\(s\) of another shape: another width"),
    ("no-layer", answer([{"name": "SHSA", "checkpoint": "/x/shsa.pt", "error": None, "hint": None, "layers": []}]), 2,
     "has no layer of SHSA"),
    ("bad-checkpoint", answer([{"name": "SHSA", "checkpoint": "/x/shsa.pt",
                                "error": "the checkpoint holds no state_dict", "hint": "h", "layers": []}]), 2,
     "holds no state_dict; nothing was written"),
    ("no-build", answer([], checks=[{"name": "build", "status": "fail", "message": "layer 3: boom"}]), 2,
     "layer 3: boom"),
]


@pytest.mark.parametrize("raw,code,text", [r[1:] for r in RUNS], ids=[r[0] for r in RUNS])
def test_weights_command_exits_by_what_the_runner_found(genyaml_repo, tmp_path, monkeypatch, raw, code, text):
    import yamlforge.weights.load

    (tmp_path / "shsa.pt").write_bytes(b"")
    (tmp_path / "m.yaml").write_text("nc: 1\n")
    calls = []
    monkeypatch.setattr(yamlforge.weights.load, "run_runner", lambda *a, **k: (calls.append(k) or raw, ""))
    result = CliRunner().invoke(app, ["weights", str(tmp_path / "m.yaml"), "--repo", str(genyaml_repo),
                                      "--load", f"SHSA={tmp_path / 'shsa.pt'}", "-o", str(tmp_path / "out.pt")])
    assert result.exit_code == code, result.output
    assert re.search(text, result.output), result.output
    assert calls[0]["script"].name == "weights_runner.py"
