"""`yamlforge gen-yaml` on the command line: bad input is one line and exit 2 with nothing written; output and diffs."""

from __future__ import annotations

import pytest
from checkout_tools import tree_hashes
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.scratch import pristine_checkout

PRISTINE = pristine_checkout("ultralytics", "8.4.190")
RT = "ultralytics/cfg/models/rt-detr"


@pytest.fixture
def repo(genyaml_repo):
    return genyaml_repo


def run(*args):
    return CliRunner().invoke(app, ["gen-yaml", *map(str, args)])


def bad_recipe(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("base: rtdetr-l\nedits:\n  - insert-after: 3=nn.Identity\noutput: x.yaml\n")
    return path


def existing_output(repo):
    (repo / RT / "rtdetr-l-Identity.yaml").write_text("mine\n")


BAD = [
    # id, args (REPO / RECIPE placeholders), setup, words in the error line
    ("bad-edit-syntax", ["rtdetr-l", "--replace", "4"], None, "missing module: write --replace 4=MODULE"),
    ("bad-layer-number", ["rtdetr-l", "--replace", "four=nn.Identity"], None, "'four' is not a layer number"),
    ("index-out-of-range", ["rtdetr-l", "--replace", "29=nn.Identity"], None, "layer 29 does not exist"),
    ("index-of-removed-layer", ["rtdetr-l", "--remove", "12", "--insert-after", "12=nn.Identity"], None,
     "layer 12 is removed by another edit"),
    ("unknown-module", ["rtdetr-l", "--replace", "3=Frobnicator"], None, "unknown module 'Frobnicator'"),
    ("unknown-base", ["rtdetr-q", "--insert-after", "3=nn.Identity"], None, "no model 'rtdetr-q'"),
    ("recipe-bad-key", ["--recipe", "RECIPE"], bad_recipe, "unknown recipe key 'output'"),
    ("negative-repeats", ["rtdetr-l", "--replace", "3=nn.Identity*-1"], None, "repeats must be 1 or more"),
    ("remove-multi-input", ["rtdetr-l", "--remove", "15"], None, "layer 15 (Concat) reads 2 layers"),
    ("scale-on-single-scale-base", ["rtdetr-l", "--scale", "x"], None, "single scale"),
    ("stride-change", ["rtdetr-l", "--replace", "layer4=nn.Identity"], None, "layer 4 is DWConv with stride 2"),
    ("output-exists", ["rtdetr-l", "--insert-after", "3=nn.Identity"], existing_output, "exists; nothing was written"),
    ("nc-zero", ["rtdetr-l", "--nc", "0"], None, "--nc must be a positive whole number"),
    ("no-base", [], None, "no base model"),
    ("not-a-checkout", ["rtdetr-l", "--repo", "/"], None, "is not an Ultralytics, YOLOv9, YOLOv7 or YOLOv5 checkout"),
]


@pytest.mark.parametrize("args, setup, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_written(repo, tmp_path, args, setup, words):
    recipe = setup(tmp_path) if setup is bad_recipe else None
    if setup is existing_output:
        setup(repo)
    before = tree_hashes(repo)
    args = [recipe if a == "RECIPE" else a for a in args]
    if "--repo" not in args:
        args += ["--repo", repo]
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and words in errors[0], result.output
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), result.output
    assert "Traceback" not in result.output
    assert tree_hashes(repo) == before


def test_writes_next_to_the_base_and_prints_path_and_table(repo):
    result = run("yolov8n", "--insert-after", "15=nn.Identity", "--repo", repo)
    assert result.exit_code == 0, result.output
    out = repo / "ultralytics/cfg/models/v8/yolov8n-Identity.yaml"
    assert out.is_file()
    assert "create ultralytics/cfg/models/v8/yolov8n-Identity.yaml" in result.output
    assert "[16, 19, 22]" in result.output and "nn.Identity" in result.output
    assert "- [[16, 19, 22], 1, Detect, [nc]] # Detect(P3, P4, P5)" in out.read_text()


def test_dry_run_prints_a_git_style_diff_and_writes_nothing(repo):
    before = tree_hashes(repo)
    result = run("rtdetr-l", "--insert-after", "3=nn.Identity", "--repo", repo, "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"--- a/{RT}/rtdetr-l.yaml\n+++ b/{RT}/rtdetr-l-Identity.yaml\n" in result.output
    assert "+  - [-1, 1, nn.Identity, []] # 4\n" in result.output
    assert "-  - [[21, 24, 27], 1, RTDETRDecoder, [nc]]" in result.output
    assert "+  - [[22, 25, 28], 1, RTDETRDecoder, [nc]] # RTDETRDecoder(P3, P4, P5)" in result.output
    assert "would create" in result.output
    assert tree_hashes(repo) == before


def test_force_overwrites(repo):
    existing_output(repo)
    result = run("rtdetr-l", "--insert-after", "3=nn.Identity", "--repo", repo, "--force")
    assert result.exit_code == 0, result.output
    assert "overwrite" in result.output
    assert "nn.Identity" in (repo / RT / "rtdetr-l-Identity.yaml").read_text()


def test_output_option_and_repo_found_from_the_base_path(repo, tmp_path):
    out = tmp_path / "out" / "mine.yaml"
    result = run(repo / RT / "rtdetr-l.yaml", "--replace", "3=nn.Identity", "-o", out)
    assert result.exit_code == 0, result.output
    assert "- [-1, 1, nn.Identity, []] # stage 2" in out.read_text()


def test_tasks_py_syntax_error_is_one_line_not_a_traceback(repo, tmp_path):
    tasks = repo / "ultralytics/nn/tasks.py"
    text = tasks.read_text()
    tasks.write_text(text.replace("def parse_model(", "def parse_model((", 1))
    line = text[: text.index("def parse_model(")].count("\n") + 1
    # AIFI is checked against the names tasks.py imports, so tasks.py is read (nn.* or an applied spec need not)
    result = CliRunner().invoke(app, ["gen-yaml", "rtdetr-l", "--insert-after", "3=AIFI", "--repo", str(repo),
                                      "-o", str(tmp_path / "out.yaml")])
    assert result.exit_code == 2, result.output
    assert "'ultralytics/nn/tasks.py' is not valid Python" in result.output
    assert f"(ultralytics/nn/tasks.py:{line})" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out.yaml").exists()


def test_torch_modules_need_no_parse_of_tasks_py(repo, tmp_path):
    # parsing tasks.py (~40 ms of ast) is left out when torch's or applied modules need no check against it
    tasks = repo / "ultralytics/nn/tasks.py"
    tasks.write_text(tasks.read_text().replace("def parse_model(", "def parse_model((", 1))
    result = CliRunner().invoke(app, ["gen-yaml", "rtdetr-l", "--insert-after", "3=nn.Identity", "--repo", str(repo),
                                      "-o", str(tmp_path / "out.yaml")])
    assert result.exit_code == 0, result.output
    assert "nn.Identity" in (tmp_path / "out.yaml").read_text()
