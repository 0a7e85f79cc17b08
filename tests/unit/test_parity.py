"""Bundled modules compute what the paper authors' code computes, with the authors' weights loaded.

Each fixture in ``tests/fixtures/parity/`` (see its README) holds an official module's config, state_dict,
inputs and outputs. We build our module from the config and load the state_dict through the spec's
``official:`` mapping (``yamlforge.weights.load``), then compare every output in eval mode, float32.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from parity import load_fixture

from yamlforge.resources import SPECS_DIR
from yamlforge.specs import load_spec

RTOL = 1e-5
# Elements near zero have no meaningful relative error: their float32 rounding is set by the magnitudes
# summed into them, so the absolute floor is the same one-in-1e5, taken of the output's largest magnitude.
ATOL_OF_PEAK = 1e-5


def official_module(spec_file: str, fixture: dict):
    """Our module built from the official config, holding the official weights (every key accounted for)."""
    spec = load_spec(SPECS_DIR / spec_file, bundled=True)
    loaded = importlib.util.spec_from_file_location(f"parity_{spec.file_stem}", spec.source)
    implementation = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(implementation)
    cls = getattr(implementation, spec.official.cls or spec.exports[0])
    module = cls(**spec.official.constructor_kwargs(fixture["config"]))
    official = fixture["state_dict"]
    ours = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    report = spec.official.match({name: tuple(t.shape) for name, t in official.items()}, ours)
    assert report.complete, report
    module.load_state_dict(report.state_dict(official))
    return module.eval()


def assert_outputs_equal(got, expected) -> None:
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL_OF_PEAK * expected.abs().max().item())


def size_id(x) -> str:
    return "x".join(str(s) for s in x.shape[-2:])


SHSA = load_fixture("shsa")
BRA = load_fixture("bra")
REVCOL = load_fixture("revcol")


@pytest.fixture(scope="module")
def shsa():
    return official_module("shsa.yaml", SHSA)


@pytest.fixture(scope="module")
def bra():
    return official_module("biformer.yaml", BRA)


@pytest.fixture(scope="module")
def revcol():
    return official_module("revcol.yaml", REVCOL)


@pytest.mark.parametrize("index", range(len(SHSA["inputs"])), ids=[size_id(x) for x in SHSA["inputs"]])
def test_shsa_equals_shvit(shsa, index):
    with torch.no_grad():
        assert_outputs_equal(shsa(SHSA["inputs"][index]), SHSA["outputs"][index])


@pytest.mark.parametrize("index", range(len(BRA["inputs"])), ids=[size_id(x) for x in BRA["inputs"]])
def test_bra_equals_biformer_auto_pad(bra, index):
    with torch.no_grad():
        assert_outputs_equal(bra(BRA["inputs"][index]), BRA["outputs"][index])


@pytest.mark.parametrize("index", range(len(REVCOL["inputs"])), ids=[size_id(x) for x in REVCOL["inputs"]])
def test_revcol_equals_official_last_column(revcol, index):
    with torch.no_grad():
        got = revcol(REVCOL["inputs"][index])
    expected = REVCOL["outputs"][index]
    assert len(got) == len(expected) == 4
    for stride, g, e in zip((4, 8, 16, 32), got, expected):
        assert g.shape == e.shape, f"stride {stride}"
        assert_outputs_equal(g, e)


def test_fixtures_cover_the_sizes_the_issue_names():
    """The checks above are only as strong as the fixtures: pin the sizes they exercise."""
    assert [size_id(x) for x in SHSA["inputs"]] == ["20x20", "13x17"]
    assert [size_id(x) for x in BRA["inputs"]] == ["14x14", "21x21", "20x20", "40x40", "20x33"]
    assert [size_id(x) for x in REVCOL["inputs"]] == ["128x128", "64x96"]
