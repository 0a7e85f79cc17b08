"""Fusion variants without torch: host-rule registration, generated code, errors, apply/revert, show, --replace-all."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.compile import GenRequest, compile_yaml
from yamlforge.modelyaml.edits import parse_replace_all
from yamlforge.patch.codemods.registration import Registration, register_in_parse_model
from yamlforge.patch.fusion import HOSTS, disk_reader, fusable, hosts_for, render_fusion, resolve_fusions
from yamlforge.patch.manifest import read_manifest
from yamlforge.specs import SpecRegistry
from yamlforge.targets import detect_target

RUFF = [sys.executable, "-m", "ruff"]
REGISTRY = SpecRegistry()
KEEP_SPECS = [s for s in REGISTRY if fusable(s)]
TARGETS = [("ultralytics", v) for v in ("8.0.227", "8.1.47", "8.2.103", "8.3.40", "8.3.228", "8.4.190")] + [
    ("yolov9", "0.0.4")
]


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def host(name: str, fused: str) -> Registration:
    return Registration(fused, "host", host=name)


# ----------------------------------------------------------------------------- registration: the host's own rule

V8_0 = src("""
    def parse_model(d, ch, verbose=True):
        for i, (f, n, m, args) in enumerate(d['backbone'] + d['head']):  # from, number, module, args
            if m in (Classify, Conv, C2f, RepC3):
                c1, c2 = ch[f], args[0]
                args = [c1, c2, *args[1:]]
                if m in (C2f, RepC3):
                    args.insert(2, n)  # number of repeats
                    n = 1
            elif m in (HGStem, HGBlock):
                c1, cm, c2 = ch[f], args[0], args[1]
                args = [c1, cm, c2, *args[2:]]
                if m is HGBlock:
                    args.insert(4, n)  # number of repeats
                    n = 1
            else:
                c2 = ch[f]
            ch.append(c2)
""")

V8_4 = src("""
    def parse_model(d, ch, verbose=True):
        base_modules = frozenset(
            {
                Classify,
                C2f,
                C3k2,
            }
        )
        repeat_modules = frozenset(  # modules with 'repeat' arguments
            {
                C2f,
                C3k2,
            }
        )
        for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):  # from, number, module, args
            if m in base_modules:
                c1, c2 = ch[f], args[0]
                if m is not Classify:
                    c2 = make_divisible(min(c2, max_channels) * width, 8)
                args = [c1, c2, *args[1:]]
                if m in repeat_modules:
                    args.insert(2, n)  # number of repeats
                    n = 1
                if m is C3k2:  # for M/L/X sizes
                    legacy = False
            elif m in frozenset({HGStem, HGBlock}):
                c1, cm, c2 = ch[f], args[0], args[1]
            else:
                c2 = ch[f]
            ch.append(c2)
""")

YOLOV9 = src("""
    def parse_model(d, ch):  # model_dict, input_channels(3)
        for i, (f, n, m, args) in enumerate(d['backbone'] + d['head']):  # from, number, module, args
            m = eval(m) if isinstance(m, str) else m  # eval strings
            if m in {Conv, ADown, RepNCSPELAN4, SPPELAN}:
                c1, c2 = ch[f], args[0]
                args = [c1, c2, *args[1:]]
            else:
                c2 = ch[f]
            ch.append(c2)
""")

HOST_FIXES = [
    pytest.param(
        V8_0, [host("RepC3", "RepC3_SHSA")],
        V8_0.replace("C2f, RepC3):", "C2f, RepC3, RepC3_SHSA):").replace("(C2f, RepC3):", "(C2f, RepC3, RepC3_SHSA):"),
        id="8.0-base-and-repeat-tuples",
    ),
    pytest.param(
        V8_0, [host("HGBlock", "HGBlock_SHSA")],
        V8_0.replace("(HGStem, HGBlock):", "(HGStem, HGBlock, HGBlock_SHSA):").replace(
            "if m is HGBlock:", "if m in {HGBlock, HGBlock_SHSA}:"),
        id="8.0-hgblock-branch-and-is-check-that-inserts-n",
    ),
    pytest.param(
        V8_4, [host("C3k2", "C3k2_SHSA"), host("C3k2", "C3k2_token_mixer")],
        V8_4.replace("            C3k2,\n        }\n    )\n    repeat",
                     "            C3k2,\n            C3k2_SHSA,\n            C3k2_token_mixer,\n"
                     "        }\n    )\n    repeat")
        .replace("            C3k2,\n        }\n    )\n    for",
                 "            C3k2,\n            C3k2_SHSA,\n            C3k2_token_mixer,\n        }\n    )\n    for")
        .replace("if m is C3k2:", "if m in {C3k2, C3k2_SHSA, C3k2_token_mixer}:"),
        id="8.4-base-modules-repeat-modules-and-c3k2-check",
    ),
    pytest.param(
        V8_4, [host("C2f", "C2f_SHSA")],
        V8_4.replace("            C3k2,\n        }", "            C3k2,\n            C2f_SHSA,\n        }"),
        id="8.4-c2f-joins-both-frozensets-only",
    ),
    pytest.param(
        V8_4, [host("HGBlock", "HGBlock_SHSA")],
        V8_4.replace("frozenset({HGStem, HGBlock})", "frozenset({HGStem, HGBlock, HGBlock_SHSA})"),
        id="8.4-inline-frozenset",
    ),
    pytest.param(
        YOLOV9, [host("RepNCSPELAN4", "RepNCSPELAN4_SHSA")],
        YOLOV9.replace("RepNCSPELAN4, SPPELAN}", "RepNCSPELAN4, SPPELAN, RepNCSPELAN4_SHSA}"),
        id="yolov9-set",
    ),
    pytest.param(
        V8_0, [host("RepC3", "RepC3_SHSA"), Registration("SHSA", "keep")],
        V8_0.replace("C2f, RepC3):", "C2f, RepC3, RepC3_SHSA):").replace("(C2f, RepC3):", "(C2f, RepC3, RepC3_SHSA):")
        .replace("        else:\n", "        elif m in {SHSA}:  # yamlforge: channel-keeping modules\n"
                                  "            c2 = ch[f]\n            args = [c2, *args]\n        else:\n"),
        id="with-the-module-itself-in-one-edit",
    ),
]

HOST_NOOPS = [
    pytest.param(V8_0.replace("(HGStem, HGBlock)", "(HGStem, HGBlock, HGBlock_SHSA)"), "HGBlock", "HGBlock_SHSA",
                 id="hand-registered-in-the-host-branch"),
    pytest.param(V8_0.replace("if m is HGBlock:", "if m in {HGBlock, HGBlock_SHSA}:"), "HGBlock", "HGBlock_SHSA",
                 id="registered-in-the-is-check-only"),
    pytest.param(V8_4.replace("if m is C3k2:", "if m  in{C3k2 ,C3k2_SHSA}:"), "C3k2", "C3k2_SHSA",
                 id="unusual-spacing"),
]


@pytest.mark.parametrize(("before", "registrations", "after"), HOST_FIXES)
def test_fused_class_joins_every_condition_of_its_host(before, registrations, after):
    assert register_in_parse_model(before, registrations, filename="tasks.py") == after
    assert register_in_parse_model(after, registrations, filename="tasks.py") == after


@pytest.mark.parametrize(("code", "host_name", "fused"), HOST_NOOPS)
def test_host_registration_noop(code, host_name, fused):
    assert register_in_parse_model(code, [host(host_name, fused)], filename="tasks.py") == code


def test_host_that_parse_model_never_tests_is_an_error_naming_it():
    with pytest.raises(YamlforgeError) as info:
        register_in_parse_model(YOLOV9, [host("HGBlock", "HGBlock_SHSA")], filename="yolo.py")
    assert "against HGBlock" in info.value.message and info.value.where == "yolo.py:1"


def test_host_registration_needs_a_host():
    with pytest.raises(ValueError):
        Registration("X", "host")
    with pytest.raises(ValueError):
        Registration("X", "keep", host="C2f")


# ----------------------------------------------------------------------------- generated code


def _generated(pristine, kind, version):
    target = detect_target(pristine(kind, version))
    read = disk_reader(target)
    out = {}
    for spec in KEEP_SPECS:
        for at in ("inner", "output"):
            for fusion in resolve_fusions(target, [spec], ["all"], at, read):
                out[f"{fusion.file_stem}_{at}"] = (render_fusion(target, fusion, spec, read), fusion)
    return target, out


@pytest.mark.parametrize(("kind", "version"), TARGETS, ids=[f"{k}-{v}" for k, v in TARGETS])
def test_generated_code_compiles_passes_ruff_and_is_stable(pristine, tmp_path, kind, version):
    files = _generated(pristine, kind, version)[1]
    again = _generated(pristine, kind, version)[1]
    expected_hosts = {h.name for h in hosts_for(kind)}
    if kind == "ultralytics" and version == "8.0.227":
        expected_hosts -= {"C3k2", "RepNCSPELAN4"}
    elif kind == "ultralytics" and version < "8.3":
        expected_hosts -= {"C3k2"}
    assert {f.host for _, f in files.values()} == expected_hosts
    assert len(files) == len(expected_hosts) * len(KEEP_SPECS) * 2
    for name, (code, fusion) in files.items():
        assert code == again[name][0]
        compile(code, name, "exec")
        assert f"class {fusion.name}({fusion.host}):" in code
        (tmp_path / f"{name}.py").write_text(code)
    for config in (["--isolated"], ["--config", str(Path(__file__).resolve().parents[2] / "pyproject.toml")]):
        result = subprocess.run([*RUFF, "check", "--no-cache", *config, str(tmp_path)], capture_output=True,
                                text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_generated_class_keeps_the_hosts_own_signature_per_version(pristine):
    for version, signature in (("8.3.40", "c1, c2, n=1, c3k=False, e=0.5, g=1, shortcut=True"),
                               ("8.4.190", "c1, c2, n=1, c3k=False, e=0.5, attn=False, g=1, shortcut=True")):
        target = detect_target(pristine("ultralytics", version))
        [fusion] = resolve_fusions(target, [REGISTRY.get("SHSA")], ["C3k2"], None, disk_reader(target))
        code = render_fusion(target, fusion, REGISTRY.get("SHSA"), disk_reader(target))
        assert f"def __init__(self, {signature}):" in code
        assert f"super().__init__({', '.join(p.split('=')[0] for p in signature.split(', '))})" in code


def test_yolov9_host_keeps_its_c5_argument(pristine):
    target = detect_target(pristine("yolov9", "0.0.4"))
    [fusion] = resolve_fusions(target, [REGISTRY.get("SHSA")], ["RepNCSPELAN4"], None, disk_reader(target))
    code = render_fusion(target, fusion, REGISTRY.get("SHSA"), disk_reader(target))
    assert "def __init__(self, c1, c2, c3, c4, c5=1):" in code
    assert "from models.common import RepNCSPELAN4" in code and "from models.yamlforge.shsa import SHSA" in code


# ----------------------------------------------------------------------------- bad requests

ERRORS = [
    pytest.param("8.0.227", "RIFormerBlock", ["RepC3"], None, "only channel-keeping modules", "--module",
                 id="in-out-module"),
    pytest.param("8.4.190", "ResidualWrap", ["C2f"], None, "from the width alone, and ResidualWrap also needs args",
                 "--module", id="module-with-a-required-arg"),
    pytest.param("8.0.227", "SHSA", ["C3k2"], None, "Ultralytics 8.3.0 and later", "--fuse", id="c3k2-on-8.0"),
    pytest.param("8.0.227", "SHSA", ["RepNCSPELAN4"], None, "Ultralytics 8.1.0 and later", "--fuse",
                 id="elan-on-8.0"),
    pytest.param("8.4.190", "SHSA", ["Bottleneck"], None, "unknown fusion host 'Bottleneck'", "--fuse",
                 id="unknown-host"),
    pytest.param("8.4.190", "SHSA", ["C2f"], "middle", "unknown placement 'middle'", "--fuse-at", id="bad-placement"),
    pytest.param("8.4.190", "SHSA", [], "inner", "--fuse-at needs --fuse", "--fuse-at", id="fuse-at-alone"),
]


@pytest.mark.parametrize(("version", "module", "hosts", "at", "message", "option"), ERRORS)
def test_bad_fusion_request_is_one_clear_error(pristine, version, module, hosts, at, message, option):
    target = detect_target(pristine("ultralytics", version))
    with pytest.raises(YamlforgeError) as info:
        resolve_fusions(target, [REGISTRY.get(module)], hosts, at, disk_reader(target))
    assert message in info.value.message and info.value.where == option


def test_ultralytics_host_on_yolov9_names_where_it_exists(pristine):
    target = detect_target(pristine("yolov9", "0.0.4"))
    with pytest.raises(YamlforgeError) as info:
        resolve_fusions(target, [REGISTRY.get("SHSA")], ["C2f"], None, disk_reader(target))
    assert "cannot be fused on yolov9" in info.value.message and "RepNCSPELAN4" in info.value.hint


def test_every_host_has_a_default_and_an_output_placement():
    assert all([p.name for p in h.placements] == ["inner", "output"] for h in HOSTS)


# ----------------------------------------------------------------------------- apply / revert / show / gen-yaml


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.mark.parametrize("version", ["8.0.227", "8.4.190"])
def test_apply_with_fusions_is_idempotent_and_revert_is_byte_identical(checkout_factory, version):
    root = checkout_factory("ultralytics", version)
    before = tree_hashes(root)
    run("apply", "--repo", root, "--module", "SHSA", "--module", "token_mixer", "--fuse", "all")
    after = tree_hashes(root)
    fused = {n for n in read_manifest(root).fusions}
    expected = {"C2f", "RepC3", "HGBlock"} | ({"C3k2", "RepNCSPELAN4"} if version == "8.4.190" else set())
    assert fused == {f"{h}_{m}" for h in expected for m in ("SHSA", "token_mixer")}
    assert all(f"ultralytics/nn/modules/fused_{n.lower()}.py" in after for n in fused)
    result = run("apply", "--repo", root, "--module", "SHSA", "--module", "token_mixer", "--fuse", "all")
    assert "already applied" in result.output and tree_hashes(root) == after
    run("apply", "--repo", root, "--module", "SHSA", "--fuse", "HGBlock", "--check")  # exit 0: nothing to do

    run("revert", "--repo", root, "--module", "token_mixer")
    assert set(read_manifest(root).fusions) == {f"{h}_SHSA" for h in expected}
    run("revert", "--repo", root)
    assert tree_hashes(root) == before


def test_revert_of_one_fusion_keeps_the_module(checkout_factory):
    root = checkout_factory("ultralytics", "8.4.190")
    before = tree_hashes(root)
    run("apply", "--repo", root, "--module", "SHSA")
    with_module = tree_hashes(root)
    manifest_text = (root / ".yamlforge/manifest.json").read_text()
    assert '"fusions"' not in manifest_text  # manifests without fusions keep their old shape
    run("apply", "--repo", root, "--module", "SHSA", "--fuse", "RepC3", "--fuse-at", "output")
    assert read_manifest(root).fusions["RepC3_SHSA"].at == "output"
    assert "self.cv3 = nn.Sequential(self.cv3, SHSA(c2))" in (
        root / "ultralytics/nn/modules/fused_repc3_shsa.py").read_text()
    run("revert", "--repo", root, "--module", "RepC3_SHSA")
    assert tree_hashes(root) == with_module
    run("revert", "--repo", root)
    assert tree_hashes(root) == before


def test_yolov9_fusion_is_exported_by_the_package_and_reverts(yolov9_checkout):
    root = yolov9_checkout
    before = tree_hashes(root)
    run("apply", "--repo", root, "--module", "SHSA", "--fuse", "RepNCSPELAN4")
    exports = (root / "models/yamlforge/__init__.py").read_text()
    assert "from .fused_repncspelan4_shsa import RepNCSPELAN4_SHSA" in exports
    assert "RepNCSPELAN4, SPPELAN, RepNCSPELAN4_SHSA}" in (root / "models/yolo.py").read_text()
    run("revert", "--repo", root)
    assert tree_hashes(root) == before


def test_show_fuse_prints_the_class_and_touches_no_checkout(checkout_factory):
    root = checkout_factory("ultralytics", "8.0.227")
    before = tree_hashes(root)
    result = run("show", "SHSA", "--fuse", "HGBlock", "--repo", root)
    assert "class HGBlock_SHSA(HGBlock):" in result.output
    assert "act=nn.ReLU()):  # noqa: B008" in result.output  # 8.0's own signature
    assert tree_hashes(root) == before
    default = run("show", "SHSA", "--fuse", "HGBlock")  # Ultralytics 8.4.190 semantics
    assert "act=None):" in default.output
    assert run("show", "RIFormerBlock", "--fuse", "RepC3", code=2).output.startswith("error:")


def test_replace_all_swaps_every_host_row_keeping_args(checkout_factory, tmp_path):
    root = checkout_factory("ultralytics", "8.4.190")
    base = (root / "ultralytics/cfg/models/rt-detr/rtdetr-l.yaml").read_text()
    with pytest.raises(YamlforgeError) as info:  # not applied yet: the hint is the apply command
        compile_yaml(GenRequest("rtdetr-l", replace_all=[parse_replace_all("HGBlock=HGBlock_SHSA")], repo=root,
                                output=tmp_path / "x.yaml"))
    assert "--module SHSA --fuse HGBlock" in info.value.hint
    run("apply", "--repo", root, "--module", "SHSA", "--fuse", "HGBlock")
    result = compile_yaml(GenRequest("rtdetr-l", replace_all=[parse_replace_all("HGBlock=HGBlock_SHSA")], repo=root,
                                     output=tmp_path / "x.yaml"))
    old_rows = [line for line in base.splitlines() if ", HGBlock," in line]
    new_rows = [line for line in result.new_text.splitlines() if ", HGBlock_SHSA," in line]
    assert len(old_rows) == len(new_rows) == 6
    assert [r.split("HGBlock_SHSA")[1].split("]]")[0] for r in new_rows] == [
        r.split("HGBlock")[1].split("]]")[0] for r in old_rows]
    assert ", HGBlock," not in result.new_text
    with pytest.raises(YamlforgeError) as info:
        compile_yaml(GenRequest("rtdetr-l", replace_all=[parse_replace_all("HGBlock=HGBlock_SHSA", "head")],
                                repo=root, output=tmp_path / "y.yaml"))
    assert "no layer of the base runs HGBlock in its head" in info.value.message


@pytest.mark.parametrize("value", ["HGBlock", "HGBlock=", "=X", "HG Block=X"])
def test_replace_all_syntax_errors(value):
    with pytest.raises(YamlforgeError) as info:
        parse_replace_all(value)
    assert info.value.where == f"--replace-all {value}"
