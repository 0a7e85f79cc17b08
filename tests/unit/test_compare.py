"""compare without torch: one subprocess per model (faked), failed rows, differences and the four formats."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yamlforge.check.compare import RUNNER, Measurement, compare, differences, render
from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.target_python import RunnerAnswer
from yamlforge.targets import ULTRALYTICS, Target

BASE = Measurement(model="rtdetr-l", yaml="/m/rtdetr-l.yaml", layers=29, parameters=32_970_476, gflops=108.0,
           latency_ms=200.0, latency_runs=10, peak_mib=300.0, memory_method="peak RSS delta")
SHSA = Measurement(model="rtdetr-l-SHSA", yaml="/m/rtdetr-l-SHSA.yaml", layers=30, parameters=33_000_000, gflops=110.0,
           latency_ms=210.0, latency_runs=10, peak_mib=330.0, memory_method="peak RSS delta")
BROKEN = Measurement(model="broken", yaml="/m/broken.yaml", error="build: layer 16: module X is not known")


def measured(parameters: int) -> dict:
    totals = {"layers": 23, "parameters": parameters, "gflops": 0.09, "latency_ms": 12.5, "latency_runs": 3,
              "peak_mib": 18.0, "memory_method": "peak RSS delta"}
    return {"checks": [{"name": "build", "status": "pass", "message": "built"}], "totals": totals}


@pytest.fixture
def models(tmp_path) -> list[Path]:
    paths = [tmp_path / f"{name}.yaml" for name in ("a", "broken", "c")]
    for path in paths:
        path.write_text("nc: 1\n")
    return paths


def fake_runner(monkeypatch, answers: dict) -> list:
    calls = []

    def run(script, args, **kwargs):
        yaml = args[args.index("--yaml") + 1]
        calls.append((Path(yaml).stem, args, {**kwargs, "script": script}))
        return RunnerAnswer(*answers[Path(yaml).stem])

    monkeypatch.setattr("yamlforge.check.compare.run_runner", run)
    return calls


ANSWERS = {
    "a": (measured(1000), ""),
    "broken": ({"checks": [{"name": "build", "status": "fail", "message": "layer 16: module X is not known"}]}, ""),
    "c": (measured(1500), ""),
}


def test_one_subprocess_per_model_in_order_and_a_broken_yaml_is_one_failed_row(monkeypatch, models, tmp_path):
    calls = fake_runner(monkeypatch, ANSWERS)
    progress = []
    rows = compare(models, Target(root=tmp_path, kind=ULTRALYTICS, version="8.4.190"), imgsz=64, runs=3,
                   progress=progress.append)
    assert [c[0] for c in calls] == ["a", "broken", "c"]
    assert all(c[2]["script"] == RUNNER for c in calls)
    assert calls[0][1][-2:] == ["--runs", "3"]
    assert [r.ok for r in rows] == [True, False, True]
    assert rows[1].error == "build: layer 16: module X is not known"
    assert len(progress) == 6 and progress[5].startswith("compare [3/3]") and "1,500 parameters" in progress[5]


@pytest.mark.parametrize(("answer", "error"), [
    ((None, "Killed"), "the compare subprocess printed no result (Killed)"),
    (({"error": "ValueError: x", "internal_error": "tb"}, "tb\nlast"),
     "the compare subprocess crashed: ValueError: x (last)"),
], ids=["silent", "crash"])
def test_a_dead_subprocess_is_a_failed_row(monkeypatch, models, tmp_path, answer, error):
    fake_runner(monkeypatch, {**ANSWERS, "broken": answer})
    rows = compare(models, Target(root=tmp_path, kind=ULTRALYTICS, version="8.4.190"), imgsz=64)
    assert rows[1].error == error and rows[2].ok


@pytest.mark.parametrize(("options", "where"), [
    ({"imgsz": 65}, "--imgsz"), ({"runs": 0}, "--runs"),
], ids=["imgsz", "runs"])
def test_bad_options_fail_before_any_run(monkeypatch, models, tmp_path, options, where):
    calls = fake_runner(monkeypatch, ANSWERS)
    with pytest.raises(YamlforgeError) as info:
        compare(models, Target(root=tmp_path, kind=ULTRALYTICS, version="8.4.190"), **options)
    assert info.value.where == where and calls == []


def test_differences_are_to_the_first_measured_row():
    assert differences([BROKEN, BASE, SHSA]) == [
        dict.fromkeys(("layers", "parameters", "gflops", "latency_ms", "peak_mib")),
        dict.fromkeys(("layers", "parameters", "gflops", "latency_ms", "peak_mib")),
        {"layers": 1, "parameters": 29_524, "gflops": 2.0, "latency_ms": 10.0, "peak_mib": 30.0},
    ]


def test_markdown_is_a_github_table_with_the_errors_below():
    text = render([BASE, SHSA, BROKEN], "markdown", imgsz=640, batch=2)
    lines = text.splitlines()
    assert lines[0] == ("| model | layers | parameters | GFLOPs@640 | latency ms (b1, median of 10) | "
                        "peak MiB (fwd+bwd, b2) |")
    assert lines[1] == "| --- | ---: | ---: | ---: | ---: | ---: |"
    assert lines[2] == "| rtdetr-l | 29 | 32,970,476 | 108.00 | 200.0 | 300 |"
    assert lines[3] == ("| rtdetr-l-SHSA | 30 +1 (+3.4%) | 33,000,000 +29,524 (+0.1%) | 110.00 +2.00 (+1.9%) | "
                        "210.0 +10.0 (+5.0%) | 330 +30 (+10.0%) |")
    assert lines[4] == "| broken | failed |  |  |  |  |"
    assert lines[5:] == ["", "- broken: build: layer 16: module X is not known"]
    assert all(line.count("|") == 7 for line in lines[:5])


def test_plain_table_aligns_columns():
    lines = render([BASE, SHSA], "table", imgsz=64, batch=2).splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("rtdetr-l ") and lines[2].startswith("rtdetr-l-SHSA ")
    assert len(lines[1]) == len(lines[2])  # the last (right-aligned) column ends at the same place


def test_csv_and_json_carry_raw_numbers_and_differences():
    rows = list(csv.DictReader(io.StringIO(render([BASE, SHSA, BROKEN], "csv", imgsz=64, batch=2))))
    assert [r["model"] for r in rows] == ["rtdetr-l", "rtdetr-l-SHSA", "broken"]
    assert rows[1]["parameters"] == "33000000" and rows[1]["d_parameters"] == "29524" and rows[0]["d_gflops"] == ""
    assert rows[2]["error"] == BROKEN.error
    data = json.loads(render([BASE, SHSA], "json", imgsz=64, batch=2))
    assert data["schema"] == "yamlforge.compare/1" and data["rows"][1]["difference"]["peak_mib"] == 30.0


def test_cli_refuses_an_unknown_format():
    result = CliRunner().invoke(app, ["compare", "a.yaml", "--repo", ".", "--format", "html"])
    assert result.exit_code == 2 and "--format html is not one of table, markdown, csv, json" in result.output


def test_without_imgsz_the_runner_picks_each_tasks_size_and_the_header_shows_them(monkeypatch, models, tmp_path):
    answers = {name: ({**answer, "imgsz": size}, "") for (name, (answer, _)), size in zip(ANSWERS.items(),
                                                                                          (224, None, 640))}
    calls = fake_runner(monkeypatch, answers)
    rows = compare(models, Target(root=tmp_path, kind=ULTRALYTICS, version="8.4.190"), runs=1)
    assert all("--usual-imgsz" in args and "--imgsz" not in args for _, args, _ in calls)
    assert [r.imgsz for r in rows] == [224, None, 640]
    assert "GFLOPs@224/640" in render(rows, "table", imgsz=None, batch=2).splitlines()[0]
    assert "GFLOPs@64 " in render(rows, "table", imgsz=64, batch=2).splitlines()[0]
