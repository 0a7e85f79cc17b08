"""ablate's rows: --module/--at (auto too), --variant and --variants as gen-yaml edits, --base-weights in the plan.
Plans only, on what gen-yaml reads of 8.4.190 (no torch, no training)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.study.plan import AUTO, Hyper, Plan, StudyRequest, Variant, make_plan
from yamlforge.study.positions import candidate_layers
from yamlforge.study.trial import Trial, runner_args
from yamlforge.study.variants import VariantSpec, check_names, module_variants, parse_variant, read_variants_file


@pytest.mark.parametrize(("text", "name", "edits"), [
    ("cbam6: --insert-after 6=CBAM", "cbam6", ("--insert-after 6=CBAM",)),
    ("c3:--replace 6=C3 --remove 9", "c3", ("--replace 6=C3", "--remove 9")),
    ("res: --insert-after=6=residual:SHSA", "res", ("--insert-after 6=residual:SHSA",)),
    ("two: --insert-after 6=C2f --insert-after 6=C3", "two", ("--insert-after 6=C2f", "--insert-after 6=C3")),
    ("args: --insert-after '6=CBAM(64, 7)'", "args", ("--insert-after 6=CBAM(64, 7)",)),
    ("swap: --replace-all C2f=C3 --in head", "swap", ("--replace-all C2f=C3", "--in head")),
], ids=["insert", "replace-and-remove", "residual-equals-form", "two-at-one-place", "quoted-args", "replace-all-in"])
def test_a_variant_is_its_name_and_gen_yaml_edits(text, name, edits):
    assert parse_variant(text) == VariantSpec(name, edits)


@pytest.mark.parametrize(("text", "says"), [
    ("--insert-after 6=CBAM", "is not NAME: EDITS"),
    ("a b: --insert-after 6=CBAM", "'a b' is not a variant name"),
    ("cbam: --after 6=CBAM", "'--after' is not a gen-yaml edit"),
    ("cbam: --insert-after", "--insert-after needs a value"),
    ("cbam:", "has no edit"),
    ("cbam: --insert-after x=CBAM", "x=CBAM"),
    ("cbam: --in head", "--in goes with --replace-all"),
    ("cbam: --insert-after '6=CBAM", "No closing quotation"),
], ids=["no-name", "bad-name", "not-an-edit", "no-value", "no-edit", "bad-edit", "in-alone", "unclosed-quote"])
def test_a_bad_variant_is_one_error_naming_the_option(text, says):
    with pytest.raises(YamlforgeError, match="--variant") as caught:
        parse_variant(text)
    assert says in str(caught.value)


def test_module_rows_are_each_module_at_each_layer():
    specs = module_variants(["SHSA", "CBAM(7)"], (4, 6))
    assert [(s.name, s.edits) for s in specs] == [
        ("SHSA-at4", ("--insert-after 4=SHSA",)), ("SHSA-at6", ("--insert-after 6=SHSA",)),
        ("CBAM-at4", ("--insert-after 4=CBAM(7)",)), ("CBAM-at6", ("--insert-after 6=CBAM(7)",))]
    assert [s.edits for s in module_variants(["SHSA"], (6,), residual=True)] == [("--insert-after 6=residual:SHSA",)]
    assert module_variants(["SHSA"], (6,), residual=True)[0].name == "SHSA-res-at6"


def test_names_are_unique_and_never_the_base():
    check_names([VariantSpec("a", ("--remove 9",)), VariantSpec("b", ("--remove 9",))])
    for names, says in ((["a", "a"], "'a' is given twice"), (["base"], "'base' names the base row")):
        with pytest.raises(YamlforgeError, match=says):
            check_names([VariantSpec(n, ("--remove 9",)) for n in names])


def test_a_variants_file_maps_names_to_edits(tmp_path):
    path = tmp_path / "variants.yaml"
    path.write_text("variants:\n  c3: --replace 6=C3\n  two:\n    - --insert-after 6=CBAM(64, 7)\n    - --remove 9\n")
    assert [(s.name, s.edits) for s in read_variants_file(path)] == [
        ("c3", ("--replace 6=C3",)), ("two", ("--insert-after 6=CBAM(64, 7)", "--remove 9"))]
    for text, says in (("- c3\n", "needs a 'variants:' mapping"), ("variants:\n  c3: 6\n", "string or a list"),
                       ("variants: [\n", "not YAML")):
        path.write_text(text)
        with pytest.raises(YamlforgeError, match=says):
            read_variants_file(path)
    with pytest.raises(YamlforgeError, match="cannot read the variants file"):
        read_variants_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("base", "layers"), [
    ("yolov8n", [4, 6, 9, 15, 18, 21]),      # the P3-P5 stages and Detect's three levels
    ("yolov8n-p6", [4, 6, 8, 11, 20, 23, 26, 29]),
    ("rtdetr-l", [3, 7, 9, 21, 24, 27]),
    ("yolov8n-cls", [8]),                     # Classify reads the last stage
])
def test_auto_candidates_are_stage_outputs_and_head_levels(genyaml_repo, base, layers):
    assert [c.layer for c in candidate_layers(base, genyaml_repo)] == layers


def request(repo: Path, tmp_path: Path, **changes) -> StudyRequest:
    data = tmp_path / "data.yaml"
    data.write_text("train: images\nval: images\n")
    fields = {"base": "yolov8n", "repo": repo, "data": data, "module": (), "at": (), "out": tmp_path / "study",
              "hyper": Hyper(epochs=1, imgsz=64)} | changes
    return StudyRequest(**fields)


def test_at_auto_keeps_what_gen_yaml_accepts_and_says_so(genyaml_repo, tmp_path):
    plan, texts = make_plan(request(genyaml_repo, tmp_path, module=("C2f",), at=AUTO))
    assert [v.name for v in plan.variants] == ["base"] + [f"C2f-at{n}" for n in (4, 6, 9, 15, 18, 21)]
    assert plan.notes == ("--at auto: C2f after layers 4 (P3/8 stage), 6 (P4/16 stage), 9 (P5/32 stage), "
                          "15 (read by Detect), 18 (read by Detect), 21 (read by Detect)",)
    assert set(texts) == {v.yaml for v in plan.variants}
    with pytest.raises(YamlforgeError, match=r"refuses Conv\(64, 3, 2\) at every candidate layer .* Conv has stride 2"):
        make_plan(request(genyaml_repo, tmp_path, module=("Conv(64, 3, 2)",), at=AUTO))


def test_variants_follow_the_module_rows_and_a_refused_one_is_a_row(genyaml_repo, tmp_path):
    rows = (parse_variant("c3: --replace 6=C3"), parse_variant("down: --insert-after 6=Conv(64,3,2)"),
            parse_variant("what: --insert-after 6=NoSuchModule"))
    plan, texts = make_plan(request(genyaml_repo, tmp_path, module="C2f", at=(15,), variants=rows))
    assert [(v.name, v.edits, v.yaml) for v in plan.variants[:3]] == [
        ("base", (), "models/yolov8n.yaml"), ("C2f-at15", ("--insert-after 15=C2f",), "models/yolov8n-C2f-at15.yaml"),
        ("c3", ("--replace 6=C3",), "models/yolov8n-c3.yaml")]
    assert "  - [-1, 1, C3, []]" in texts["models/yolov8n-c3.yaml"]
    assert plan.variants[3].refused.startswith("Conv has stride 2: inserted, it would change the resolution")
    assert plan.variants[4].refused.startswith("unknown module 'NoSuchModule'")
    assert [v.name for v, _ in plan.trials()] == ["base", "C2f-at15", "c3"]


def test_base_weights_start_every_row_from_the_base(genyaml_repo, tmp_path):
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"not read while planning")
    plan, _ = make_plan(request(genyaml_repo, tmp_path, variants=(parse_variant("c3: --replace 6=C3"),),
                                base_weights=checkpoint))
    assert plan.base_weights == str(checkpoint.resolve())
    assert [v.weights for v in plan.variants] == [str(checkpoint.resolve()), "models/yolov8n-c3.pt"]
    assert Plan.from_dict(plan.to_dict()) == plan
    out = tmp_path / "study"
    for variant, expected in zip(plan.variants, (checkpoint.resolve(), out.resolve() / "models/yolov8n-c3.pt")):
        args = runner_args(Trial.of(out, variant, 0), plan, out, resume=False)
        assert args[args.index("--pretrained") + 1] == str(expected)
    without = Variant("c3", ("--replace 6=C3",), "models/yolov8n-c3.yaml")
    assert "--pretrained" not in runner_args(Trial.of(out, without, 0), plan, out, resume=False)


def test_notes_are_not_part_of_the_plans_identity(genyaml_repo, tmp_path):
    plan, _ = make_plan(request(genyaml_repo, tmp_path, module=("C2f",), at=AUTO))
    assert Plan(**{**plan.__dict__, "notes": ()}).fingerprint == plan.fingerprint


@pytest.mark.parametrize(("args", "says"), [
    (["--module", "C2f"], "--module and --at go together"),
    (["--at", "6"], "--module and --at go together"),
    ([], "no variant to compare with the base"),
    (["--variant", "c3 --replace 6=C3"], "is not NAME: EDITS"),
    (["--variant", "base: --replace 6=C3"], "'base' names the base row"),
    (["--variant", "c3: --replace 6=C3", "--variant", "c3: --remove 9"], "'c3' is given twice"),
    (["--variants", "missing.yaml"], "cannot read the variants file"),
    (["--variant", "c3: --replace 6=C3", "--base-weights", "missing.pt"], "checkpoint 'missing.pt' does not exist"),
    (["--module", "Conv(64,3,2)", "--at", "auto"], "gen-yaml refuses Conv(64,3,2) at every candidate layer"),
], ids=["module-alone", "at-alone", "nothing", "variant-syntax", "variant-named-base", "variant-twice",
        "variants-file", "base-weights", "auto-refused"])
def test_bad_rows_are_one_line_exit_2_and_nothing_written(genyaml_repo, tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.yaml").write_text("train: images\nval: images\n")
    result = CliRunner().invoke(app, ["ablate", "yolov8n", "--repo", str(genyaml_repo), "--data", "data.yaml",
                                      "-o", "study", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output and result.output.startswith("error: ")
    assert not (tmp_path / "study").exists()
