"""verify without torch in the test process: runner helpers, report parsing, schema, rendering, CLI bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console
from typer.testing import CliRunner

from yamlforge.check.verify import RUNNER, Check, VerifyReport, format_shape, render_report, verify
from yamlforge.cli import app
from yamlforge.runners import verify_runner as runner
from yamlforge.runners import yf_checks, yf_facts, yf_train
from yamlforge.target_python import RunnerAnswer
from yamlforge.targets import KINDS, YOLOV9, Runtime, Target

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "verify-schema.json").read_text())




def runner_output(**overrides) -> dict:
    """What verify_runner prints for a stock build that passed (trimmed to two layers)."""
    raw = {
        "schema": "yamlforge.verify/1",
        "target": {"kind": "ultralytics", "version": "8.4.190", "root": "/r"},
        "yaml": "yolov8n.yaml", "imgsz": 64, "batch": 2, "python": "/venv/bin/python", "torch": "2.14.1",
        "imported": {"package": "ultralytics", "file": "/r/ultralytics/__init__.py", "version": "8.4.190",
                     "inside_checkout": True},
        "builder": "YOLO(yolov8n.yaml)",
        "checks": [
            {"name": "import", "status": "pass", "message": "ultralytics imported from the checkout", "hint": None},
            {"name": "build", "status": "pass", "message": "built", "hint": None},
            {"name": "forward", "status": "pass", "message": "2 layers", "hint": None},
            {"name": "flops", "status": "pass", "message": "0.09 GFLOPs", "hint": None},
            {"name": "backward", "status": "pass", "message": "all gradients finite", "hint": None},
        ],
        "layers": [
            {"index": 0, "from": -1, "module": "Conv", "params": 464, "shape": [2, 16, 32, 32], "stride": 2},
            {"index": 1, "from": [0], "module": "Detect", "params": 900, "shape": [[2, 84, 84]], "stride": None},
        ],
        "totals": {"layers": 2, "parameters": 1364, "forward_ms": 40.0, "gflops": 0.09, "target_gflops": 0.09},
        "gradients": {"finite": True, "first_nonfinite": None, "nonfinite_count": 0, "no_grad": [],
                      "source_layer": None, "loss": "the target's detection loss"},
        "train": None, "notes": [], "ok": True,
    }
    raw.update(overrides)
    return raw


def failing_output() -> dict:
    raw = runner_output()
    raw["checks"][3] = {"name": "flops", "status": "fail", "message": "layer 2 (CachedScale) cannot be deep-copied",
                        "hint": "register_buffer it", "where": "/r/x.py:3",
                        "layer": {"index": 2, "module": "CachedScale"}}
    raw["checks"][4] = {"name": "backward", "status": "fail", "message": "NaN gradients", "hint": None,
                        "layer": {"index": 2, "module": "NaNGradient"}}
    return raw


def render(report: VerifyReport) -> str:
    buffer = io.StringIO()
    render_report(report, Console(file=buffer, width=200, no_color=True, soft_wrap=True))
    return buffer.getvalue()


# ------------------------------------------------------------------ runner helpers (pure Python)


def parse_model(layers):
    """Stands in for a target's parse_model frame: failing_layer reads its ``i`` and ``m`` locals."""
    for i, (f, n, m, args) in enumerate(layers):  # noqa: B007 - the names parse_model's frame has
        if m == "SHSA":
            raise KeyError(m)


def test_failing_layer_reads_parse_model_locals():
    with pytest.raises(KeyError) as info:
        parse_model([[-1, 1, "Conv", []], [-1, 1, "Conv", []], [-1, 1, "SHSA", []]])
    assert yf_facts.failing_layer(info.value) == {"index": 2, "module": "SHSA"}


class Layer:
    """Has the attributes parse_model stamps on every layer (``i``, ``f``)."""

    i, f = 7, -1

    def __call__(self):
        raise ValueError("shapes do not match")


def test_failing_layer_names_the_innermost_running_layer():
    with pytest.raises(ValueError) as info:
        Layer()()
    assert yf_facts.failing_layer(info.value) == {"index": 7, "module": "Layer"}


def test_failing_layer_is_none_outside_the_model():
    with pytest.raises(ZeroDivisionError) as info:
        raise ZeroDivisionError("not raised inside a model layer")
    assert yf_facts.failing_layer(info.value) is None


@pytest.mark.parametrize(("missing", "package", "expected"), [
    ("cpuinfo", "ultralytics", "pip install py-cpuinfo"),
    ("tensorboard", "models", "pip install tensorboard"),
    ("cv2.typing", "ultralytics", "pip install opencv-python"),
    ("ultralytics", "ultralytics", None),  # the target itself: not a pip fix, the import check explains it
    ("models.yamlforge", "models", None),
], ids=["renamed", "same-name", "submodule", "target-ultralytics", "target-yolov9"])
def test_hint_for_missing_module(missing, package, expected):
    hint = yf_facts.hint_for(ModuleNotFoundError(name=missing), package)
    assert (hint is None) if expected is None else hint.endswith(expected)


def test_hint_for_other_errors_is_none():
    assert yf_facts.hint_for(KeyError("SHSA"), "ultralytics") is None


@pytest.mark.parametrize(("given", "threads"), [("1", 1), ("3", 3), ("", None), ("zero", None), ("0", None)])
def test_torch_threads_follow_omp_num_threads_when_set(monkeypatch, given, threads):
    monkeypatch.setenv("OMP_NUM_THREADS", given)
    import os

    assert yf_facts.torch_threads() == (threads or max(1, min(2, os.cpu_count() or 1)))


def test_the_trainers_last_transferred_line_is_the_count():
    """Ultralytics logs it twice (Model.load, then the trainer's get_model); the scripts once."""
    text = "Transferred 10/359 items from pretrained weights\nx\nTransferred 352/353 items from OUT.pt\n"
    assert yf_train.transferred(text, "/w/OUT.pt") == {"items": 352, "of": 353, "from": "/w/OUT.pt"}
    assert yf_train.transferred(text, None) is None and yf_train.transferred("no such line", "OUT.pt") is None


TRAINER_LOG_WITHOUT_TRANSFER = Path(__file__).resolve().parents[1] / "fixtures" / "trainer_logs" / \
    "ultralytics-8.4.190-yolov8n-from-yaml.txt"  # LogLines("ultralytics") around YOLO("yolov8n.yaml").train(...)


def test_a_start_from_a_checkpoint_the_trainer_does_not_count_is_a_warning():
    """verify --train --weights OUT.pt: a trainer whose output has no "Transferred N/M items" line still trains,
    but the start from OUT.pt cannot be shown, so the train check warns (the report stays ok)."""
    output = TRAINER_LOG_WITHOUT_TRANSFER.read_text(encoding="utf-8")
    status, moved, start = yf_train.start_from_checkpoint(output, "/w/OUT.pt")
    assert (status, moved) == ("warn", None)
    assert start == '; the trainer printed no "Transferred N/M items" line, so the start from OUT.pt could not be shown'
    counted = output + "Transferred 352/353 items from /w/OUT.pt\n"
    assert yf_train.start_from_checkpoint(counted, "/w/OUT.pt") == (
        "pass", {"items": 352, "of": 353, "from": "/w/OUT.pt"}, "; from OUT.pt it transferred 352/353 items")
    assert yf_train.start_from_checkpoint(output, None) == ("pass", None, "")
    train = {"name": "train", "status": status, "message": "1 epoch" + start, "hint": None}
    report = VerifyReport.from_runner(runner_output(checks=[*runner_output()["checks"], train]))
    assert report.ok and report.check("train").status == "warn"
    jsonschema.validate(json.loads(report.to_json()), SCHEMA)


def test_log_lines_collect_a_loggers_messages_while_attached():
    import logging

    logger = logging.getLogger("yamlforge-test-trainer")
    logger.setLevel(logging.INFO)
    with yf_train.LogLines("yamlforge-test-trainer") as log:
        logger.info("Transferred %d/%d items from pretrained weights", 5, 6)
    logger.info("after")
    assert log.lines == ["Transferred 5/6 items from pretrained weights"] and not logger.handlers


def test_one_line_keeps_only_the_first_line():
    assert yf_facts.one_line(RuntimeError("first\nsecond")) == "RuntimeError: first"


def test_backward_passes_when_a_multi_output_function_has_an_unread_output():
    """Regression: RevCol's reversible autograd.Function returns P2..P5; a P3-P5 head leaves P2 without a gradient,
    and the per-layer gradient hook then receives None (it crashed with isfinite(None))."""
    import torch

    nn = torch.nn

    class TwoMaps(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, a, b):
            return a * 2 + b * 3

    class Backbone(nn.Module):
        i, f = 0, -1

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return list(TwoMaps.apply(self.conv(x)))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.ModuleList([Backbone()])

        def forward(self, x):
            return self.model[0](x)[1]  # the head reads only the second map

    report = yf_facts.Report()
    assert yf_checks.check_backward(report, facts_of(YOLOV9), Model(), 32, 1)
    assert report.data["checks"][-1]["status"] == "pass"


# ------------------------------------------------------------------ target facts handed to the runner


def facts_of(kind, version=None) -> dict:
    """What verify sends the runner for a checkout of ``kind`` (as it arrives: through JSON)."""
    return json.loads(json.dumps(Target(root=Path("/r"), kind=kind, version=version).runner_facts()))


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_runtime_facts_round_trip_through_json(kind):
    assert Runtime.from_facts(facts_of(kind)) == kind.runtime


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_runner_reads_exactly_the_facts_yamlforge_sends(kind):
    facts = facts_of(kind, "8.4.190")
    assert set(facts) == yf_facts.FACT_KEYS
    assert runner.read_facts(json.dumps(facts)) == facts


def changed_facts(drop: str = "", **changes) -> str:
    facts = {**facts_of(YOLOV9), **changes}
    return json.dumps({k: v for k, v in facts.items() if k != drop})


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "--target is not JSON"),
    (changed_facts(schema="yamlforge.target/2"), "--target has schema 'yamlforge.target/2'; this runner reads"),
    (changed_facts(drop="trainer"), "--target lacks trainer"),
    (changed_facts(build="keras"), "--target build 'keras' is not one this runner knows (wrapper, model_class)"),
    (changed_facts(name_lookup="getattr"), "--target name_lookup 'getattr' is not one this runner knows"),
], ids=["not-json", "schema", "missing-key", "unknown-build", "unknown-lookup"])
def test_runner_refuses_facts_it_does_not_understand_in_one_line(tmp_path, text, message):
    result = subprocess.run([sys.executable, str(RUNNER), "--target", text], capture_output=True, text=True,
                            cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"verify_runner: {json.loads(result.stdout)['error']}"]
    assert json.loads(result.stdout)["error"].startswith(message)


def test_verify_reports_a_refusal_as_a_runner_failure(monkeypatch, tmp_path):
    model = tmp_path / "m.yaml"
    model.write_text("nc: 1\n")
    refusal = RunnerAnswer({"schema": "yamlforge.verify/1", "error": "--target lacks trainer"}, "")
    monkeypatch.setattr("yamlforge.check.verify.run_runner", lambda *a, **k: refusal)
    report = verify(model, Target(root=tmp_path, kind=YOLOV9, version=None), imgsz=64)
    assert report.failed_checks == ["runner"]
    assert report.check("runner").message == "the verify subprocess refused to run: --target lacks trainer"
    jsonschema.validate(json.loads(report.to_json()), SCHEMA)


@pytest.mark.parametrize(("version", "since", "expected"), [
    ("8.4.190", "8.4", True), ("8.10.0", "8.4", True), ("8.3.228", "8.4", False), (None, "8.4", False),
    ("8.4.190", None, False),
], ids=["same", "later-minor", "earlier", "no-version", "no-threshold"])
def test_version_threshold(version, since, expected):
    assert yf_facts.version_at_least(version, since) is expected


@pytest.mark.parametrize(("head", "expected"), [("DualDDetect", "train_dual.py"), ("DDetect", "train.py")])
def test_head_picks_the_training_script(head, expected):
    cfg = {"head": [[[15, 18, 21], 1, head, ["nc"]]]}
    assert yf_facts.by_head(YOLOV9.runtime.train_scripts, cfg) == expected


# ------------------------------------------------------------------ report, schema, rendering


def test_passing_report_is_ok_and_matches_schema():
    report = VerifyReport.from_runner(runner_output())
    assert report.ok and report.failed_checks == []
    data = json.loads(report.to_json())
    jsonschema.validate(data, SCHEMA)
    assert data["ok"] is True and data["failed_checks"] == []


def test_failed_checks_keep_run_order_and_match_schema():
    report = VerifyReport.from_runner(failing_output())
    assert not report.ok
    assert report.failed_checks == ["flops", "backward"]
    data = json.loads(report.to_json())
    jsonschema.validate(data, SCHEMA)
    assert data["checks"][3]["layer"] == {"index": 2, "module": "CachedScale"}


def test_schema_rejects_a_report_without_verdict():
    data = json.loads(VerifyReport.from_runner(runner_output()).to_json())
    del data["ok"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)


def test_check_round_trips_extra_details():
    raw = {"name": "build", "status": "fail", "message": "m", "hint": "h", "where": None,
           "unknown_modules": [{"index": 5, "module": "SHSA"}]}
    assert Check.from_dict(raw).to_dict() == raw


def test_render_names_the_failing_check_first():
    out = render(VerifyReport.from_runner(failing_output()))
    lines = out.splitlines()
    assert lines[0].startswith("FAILED flops: layer 2 (CachedScale)")
    assert "fix: register_buffer it" in out
    assert lines[-1].startswith("verify: failed (flops, backward;")


def test_render_passing_report_shows_layer_table_and_totals():
    out = render(VerifyReport.from_runner(runner_output()))
    assert "FAILED" not in out
    assert "2×16×32×32" in out and "464" in out
    assert "2 layers, 1,364 parameters, 0.09 GFLOPs at 64" in out
    assert out.splitlines()[-1].startswith("verify: ok (5 checks, ultralytics 8.4.190)")


@pytest.mark.parametrize(("shape", "text"), [
    (None, ""),
    ([2, 16, 32, 32], "2×16×32×32"),
    ([[2, 84, 84], [[2, 144, 8, 8]]], "(2×84×84, (2×144×8×8))"),
], ids=["none", "tensor", "nested"])
def test_format_shape(shape, text):
    assert format_shape(shape) == text


# ------------------------------------------------------------------ CLI: bad input exits 2, no torch in the parent

cli = CliRunner()


def test_verify_missing_yaml_exits_2(pristine):
    result = cli.invoke(app, ["verify", "no-such-model.yaml", "--repo", str(pristine("ultralytics", "8.4.190"))])
    assert result.exit_code == 2
    assert "model YAML 'no-such-model.yaml' does not exist" in result.output


def test_verify_not_a_checkout_exits_2(tmp_path):
    (tmp_path / "m.yaml").write_text("nc: 1\n")
    result = cli.invoke(app, ["verify", str(tmp_path / "m.yaml"), "--repo", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not an Ultralytics, YOLOv9, YOLOv7 or YOLOv5 checkout" in result.output


@pytest.mark.parametrize(("option", "message"), [
    (["--imgsz", "100"], "--imgsz 100 must be a positive multiple of 32"),
    (["--batch", "0"], "--batch 0 must be at least 1"),
    (["--python", "/no/such/python"], "Python interpreter '/no/such/python' not found"),
    (["--weights", "OUT.pt"], "--weights is the checkpoint the smoke training starts from"),
    (["--train", "--weights", "/no/such/OUT.pt"], "checkpoint '/no/such/OUT.pt' does not exist"),
], ids=["imgsz", "batch", "python", "weights-without-train", "weights-missing"])
def test_verify_bad_option_exits_2(pristine, option, message):
    result = cli.invoke(app, ["verify", "yolov8n.yaml", "--repo", str(pristine("ultralytics", "8.4.190")), *option])
    assert result.exit_code == 2
    assert message in result.output


def test_several_models_with_one_models_checkpoint_are_refused(pristine, tmp_path):
    out = tmp_path / "OUT.pt"
    out.write_bytes(b"")
    repo = pristine("ultralytics", "8.4.190")
    result = cli.invoke(app, ["verify", "yolov8n.yaml", "yolov8s.yaml", "--repo", str(repo), "--train", "--weights",
                              str(out)])
    assert result.exit_code == 2 and result.output.count("error:") == 1
    assert "--weights is one model's checkpoint" in result.output


def test_stock_name_resolves_only_when_the_target_has_it(pristine):
    from yamlforge.check.verify import resolve_yaml
    from yamlforge.targets import detect_target

    target = detect_target(pristine("ultralytics", "8.4.190"))
    assert resolve_yaml("yolov8n.yaml", target) == "yolov8n.yaml"
    assert resolve_yaml("rtdetr-l.yaml", target) == "rtdetr-l.yaml"
    with pytest.raises(Exception, match="does not exist"):
        resolve_yaml("yolov99q.yaml", target)


def test_parent_never_imports_torch():
    code = ("import sys, yamlforge.cli, yamlforge.check.verify, yamlforge.check.doctor\n"
            "from typer.testing import CliRunner\n"
            "CliRunner().invoke(yamlforge.cli.app, ['verify', 'x.yaml', '--repo', '.'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ultralytics')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("data", "stderr", "failure", "reason", "diagnostic"), [
    (None, "loading\nKilled\n", "the verify subprocess printed no result", "Killed", "loading\nKilled"),
    (None, "", "the verify subprocess printed no result", "no output", ""),
    ({"error": "ValueError: x", "internal_error": "Traceback ..."}, "tb",
     "the verify subprocess crashed: ValueError: x", "ValueError: x", "Traceback ..."),
    ({"error": "--target lacks trainer"}, "verify_runner: --target lacks trainer",
     "the verify subprocess refused to run: --target lacks trainer", "--target lacks trainer",
     "verify_runner: --target lacks trainer"),
], ids=["silent", "silent-empty", "crash", "refusal"])
def test_a_runner_answer_says_why_it_is_unusable(data, stderr, failure, reason, diagnostic):
    answer = RunnerAnswer(data, stderr)
    assert not answer.ok
    assert (answer.failure("verify"), answer.reason(1), answer.diagnostic(15)) == (failure, reason, diagnostic)


def test_a_runner_answers_first_failed_check_is_the_one_reported():
    checks = [{"name": "import", "status": "pass"}, {"name": "build", "status": "fail"},
              {"name": "forward", "status": "fail"}]
    assert RunnerAnswer({"checks": checks}, "").failed_check["name"] == "build"
    assert RunnerAnswer({"checks": checks[:1]}, "").failed_check is None and RunnerAnswer(None, "").failed_check is None
