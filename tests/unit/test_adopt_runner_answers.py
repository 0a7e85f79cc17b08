"""adopt's runners speak in JSON fields (never a substring of an error to match) and stream one answer per line."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from yamlforge.adopt.probing import probe
from yamlforge.adopt.source import Requirement, candidate_classes, load_source, missing_requirements
from yamlforge.runners import adopt_runner, requirements_runner
from yamlforge.target_python import stream_runner


@pytest.mark.parametrize(("error", "extension"), [
    pytest.param("importing the source failed: ModuleNotFoundError: No module named 'deform_conv_ext'",
                 {"names": ["deform_conv_ext"]}, id="missing-ext-module"),
    pytest.param("forward raises NotImplementedError on CPU (a compiled or CUDA-only operator): NotImplementedError: x",
                 {"names": []}, id="cpu-not-implemented"),
    pytest.param("forward failed in every layout: nchw: AttributeError: 'NoneType' object has no attribute 'f'",
                 {"names": []}, id="unbuilt-op-is-none"),
    pytest.param("forward failed in every layout: nchw: RuntimeError: this block is broken", None, id="plain-failure"),
])
def test_a_refusal_says_extension_in_a_field(error, extension):
    answer = adopt_runner.refusal("Block", error)
    assert (answer["ok"], answer["error"], answer.get("extension")) == (False, error, extension)


def test_a_class_that_is_no_module_is_answered_with_a_field(tmp_path):
    (tmp_path / "configs.py").write_text("class Config(dict):\n    pass\n", encoding="utf-8")
    source = load_source(tmp_path / "configs.py")
    found = probe(source, candidate_classes(source), {}, sys.executable)
    assert (found["Config"]["ok"], found["Config"]["not_a_module"]) == (False, True)


def test_requirements_runner_answers_missing_imports_and_requirements(capsys):
    assert requirements_runner.main(["--imports", json.dumps(["json", "yamlforge_no_such_pkg"]),
                                     "--requires", json.dumps(["yamlforge-no-such-dist>=1"])]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer == {"missing_imports": ["yamlforge_no_such_pkg"],
                      "missing": [{"requirement": "yamlforge-no-such-dist>=1", "installed": None}]}


def test_missing_requirements_goes_through_the_runner():
    wanted = [Requirement("yamlforge_no_such_pkg", "no-such", "a.py:1", False)]
    assert missing_requirements(sys.executable, wanted) == wanted


def write_runner(tmp_path, body: str):
    script = tmp_path / "talk_runner.py"
    script.write_text("import json, sys, time\n" + textwrap.dedent(body), encoding="utf-8")
    return script


def test_stream_runner_reads_every_json_line_and_stderr(tmp_path):
    script = write_runner(tmp_path, """
        print(json.dumps({"ready": True}), flush=True)
        print("not json", flush=True)
        print(json.dumps({"class": "A", "ok": True}), flush=True)
        print("said on stderr", file=sys.stderr)
        print(json.dumps({"done": True}))
    """)
    said = stream_runner(script, [], python=sys.executable, timeout=60, first_timeout=60, workdir=tmp_path)
    assert said.answers == ({"ready": True}, {"class": "A", "ok": True}, {"done": True})
    assert (said.data, said.timed_out, said.tail(1)) == ({"done": True}, False, "said on stderr")


def test_stream_runner_kills_a_runner_that_goes_silent(tmp_path):
    script = write_runner(tmp_path, """
        print(json.dumps({"class": "A", "ok": True}), flush=True)
        print("stuck in B", file=sys.stderr, flush=True)
        time.sleep(600)
    """)
    said = stream_runner(script, [], python=sys.executable, timeout=1, first_timeout=60, workdir=tmp_path)
    assert said.answers == ({"class": "A", "ok": True},)
    assert said.timed_out and said.tail(1) == "stuck in B"
