"""verify's backward verdict when a layer outputs a constant at initialisation: the cause of NaN/Inf gradients (a
failure naming that layer and the residual form), a dead start with finite ones (a warning), nothing otherwise."""

from __future__ import annotations

import pytest

from yamlforge.runners import yf_checks, yf_facts

SHSA_ZEROS = {"index": 3, "module": "SHSA", "value": 0.0}


def gradients(finite: bool, source: dict | None = None) -> dict:
    return {"finite": finite, "first_nonfinite": None if finite else "model.0.conv.weight",
            "nonfinite_count": 0 if finite else 27, "no_grad": [], "source_layer": source,
            "loss": "the target's detect loss (v8DetectionLoss)"}


@pytest.mark.parametrize(("finite", "constant", "status", "layer", "says"), [
    (False, SHSA_ZEROS, "fail", {"index": 3, "module": "SHSA"},
     "the NaN/Inf starts at layer 4 (Conv); the cause: layer 3 (SHSA) outputs all zeros at initialisation"),
    (True, SHSA_ZEROS, "warn", {"index": 3, "module": "SHSA"}, "(a dead start; fix: "),
    (True, {"index": 5, "module": "Gate", "value": 1.0}, "warn", {"index": 5, "module": "Gate"},
     "layer 5 (Gate) outputs the constant 1 at initialisation"),
    (False, None, "fail", {"index": 4, "module": "Conv"}, "the NaN/Inf starts at layer 4 (Conv)"),
    (True, None, "pass", None, "all gradients of the target's detect loss (v8DetectionLoss) finite"),
], ids=["nan-caused", "dead-start", "constant-one", "nan-no-constant", "clean"])
def test_backward_verdict(finite, constant, status, layer, says):
    report = yf_facts.Report()
    yf_checks.backward_verdict(report, gradients(finite, {"index": 4, "module": "Conv"}), constant)
    (check,) = report.data["checks"]
    assert (check["status"], check.get("layer")) == (status, layer)
    assert says in check["message"]
    assert (check["hint"] is not None) == (constant is not None)
    if constant:
        assert f"--insert-after N=residual:{constant['module']}" in check["hint"]
