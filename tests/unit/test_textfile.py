"""Newline style and BOM: read as normalised text, written back byte for byte (yamlforge/textfile.py)."""

from __future__ import annotations

import difflib
import subprocess

import pytest
from checkout_tools import tree_hashes

from yamlforge.patch.changeset import Changeset
from yamlforge.patch.plan import plan_apply, plan_revert
from yamlforge.patch.writer import write_changeset
from yamlforge.specs import SpecRegistry
from yamlforge.targets import detect_target
from yamlforge.textfile import BOM, TextStyle, decode, normalise

LF = "import torch\n\nclass A:\n    pass\n"
CRLF = LF.replace("\n", "\r\n")

# (raw text of a file, its normalised text, its dominant line ending, BOM)
FILES = [
    pytest.param(LF, LF, "\n", False, id="lf"),
    pytest.param(CRLF, LF, "\r\n", False, id="crlf"),
    pytest.param("a\r\nb\nc\r\nd\r\n", "a\nb\nc\nd\n", "\r\n", False, id="mixed-crlf-mostly"),
    pytest.param("a\nb\r\nc\n", "a\nb\nc\n", "\n", False, id="mixed-lf-mostly"),
    pytest.param("a\rb\rc\r", "a\nb\nc\n", "\r", False, id="old-mac-cr"),
    pytest.param(BOM + CRLF, LF, "\r\n", True, id="bom-crlf"),
    pytest.param(BOM + LF, LF, "\n", True, id="bom-lf"),
    pytest.param("a\r\nb", "a\nb", "\r\n", False, id="crlf-no-trailing-newline"),
    pytest.param("x = 1", "x = 1", "\n", False, id="one-line-no-newline"),
    pytest.param("", "", "\n", False, id="empty"),
    pytest.param("a\x0cb\r\n", "a\x0cb\n", "\r\n", False, id="form-feed-is-not-a-line-end"),
]


def edit(text: str) -> str:
    """A codemod's kind of edit: a line inserted after the first, one appended (idempotent)."""
    lines = text.split("\n")
    if "# added" in lines:
        return text
    edited = "\n".join(lines[:1] + ["# added"] + lines[1:])
    return edited + ("" if edited.endswith("\n") else "\n") + "# appended\n"


@pytest.mark.parametrize(("raw", "text", "newline", "bom"), FILES)
def test_decode_normalises_and_encode_gives_the_same_bytes_back(raw, text, newline, bom):
    data = raw.encode("utf-8")
    normalised, style = decode(data)
    assert normalised == text == normalise(raw)
    assert (style.newline, style.bom) == (newline, bom)
    assert style.encode(normalised) == data


def applied(raw: str) -> tuple[bytes, str, TextStyle, bytes]:
    """A file's bytes, its normalised text, its style, and its bytes after :func:`edit`."""
    data = raw.encode("utf-8")
    normalised, style = decode(data)
    return data, normalised, style, style.encode(edit(normalised))


@pytest.mark.parametrize(("raw", "text", "newline", "bom"), FILES)
def test_an_edit_keeps_untouched_lines_and_ends_new_ones_like_the_file(raw, text, newline, bom):
    _, normalised, style, edited = applied(raw)
    again, again_style = decode(edited)
    assert again == edit(normalised)
    assert decode(style.encode(edit(again)))[0] == again  # apply(apply(x)) == apply(x)
    assert again_style.bom == bom
    raw_edited = edited.decode("utf-8")
    assert f"# added{newline}" in raw_edited and raw_edited.endswith(f"# appended{newline}")
    # every line of the original survives with its own ending
    original_lines = raw.removeprefix(BOM).splitlines(keepends=True)
    assert all(line in raw_edited for line in original_lines if line.endswith(("\n", "\r")))


@pytest.mark.parametrize(("raw", "text", "newline", "bom"), FILES)
def test_writing_the_original_text_back_reverts_byte_for_byte(raw, text, newline, bom):
    data, normalised, style, edited = applied(raw)
    assert style.encode(normalised) == data  # revert(apply(x)) == x, in the pristine copy's style
    if style.raw is None:  # a uniform file needs not even that: its edited bytes give the style back
        assert decode(edited)[1].encode(normalised) == data


def test_a_mixed_file_keeps_the_ending_of_every_untouched_line():
    raw = "a\r\nb\nc\r\nd\r\n"
    _, style = decode(raw.encode())
    assert style.encode("a\nb\nnew\nc\nd\n") == b"a\r\nb\nnew\r\nc\r\nd\r\n"
    assert style.encode("a\nc\nd\n") == b"a\r\nc\r\nd\r\n"


def test_files_created_next_to_a_file_take_its_line_ending_but_not_its_bom():
    _, style = decode((BOM + CRLF).encode())
    assert style.for_new_files == TextStyle("\r\n")
    assert style.for_new_files.encode("x\n") == b"x\r\n"


def test_the_writer_writes_a_patched_file_in_its_style_and_a_created_one_like_its_neighbour(tmp_path):
    (tmp_path / "tasks.py").write_bytes((BOM + CRLF).encode())
    changeset = Changeset.styled_like(tmp_path, tmp_path / "tasks.py")
    assert changeset.read("tasks.py") == LF
    changeset.set("tasks.py", edit(LF))
    changeset.set("block.py", "class B:\n    pass\n")
    write_changeset(changeset)
    assert (tmp_path / "tasks.py").read_bytes() == (BOM + edit(LF).replace("\n", "\r\n")).encode()
    assert (tmp_path / "block.py").read_bytes() == b"class B:\r\n    pass\r\n"



def changed_lines(old: list, new: list) -> int:
    opcodes = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in opcodes if tag != "equal")


def test_a_tasks_file_with_mixed_endings_changes_only_edited_lines_and_reverts_byte_for_byte(genyaml_repo):
    repo = genyaml_repo  # tasks.py and what detects the target: all a plan of SHSA reads
    tasks = repo / "ultralytics/nn/tasks.py"
    lines = tasks.read_bytes().splitlines(keepends=True)  # every 7th line stays LF, as after a hand edit on Linux
    tasks.write_bytes(b"".join(line if i % 7 == 0 else line.replace(b"\n", b"\r\n") for i, line in enumerate(lines)))
    original, before = tasks.read_bytes(), tree_hashes(repo)
    registry = SpecRegistry([])
    write_changeset(plan_apply(detect_target(repo), [registry.get("SHSA")], registry).changeset)
    patched = tasks.read_bytes()
    raw = changed_lines(original.splitlines(keepends=True), patched.splitlines(keepends=True))
    text = changed_lines(normalise(original.decode()).split("\n"), normalise(patched.decode()).split("\n"))
    assert 0 < raw == text  # no line changed by its ending alone
    write_changeset(plan_revert(detect_target(repo), registry).changeset)
    assert tree_hashes(repo) == before


def test_the_diff_of_a_crlf_file_is_what_git_diff_prints_and_git_apply_takes(tmp_path):
    (tmp_path / "tasks.py").write_bytes(CRLF.encode())
    changeset = Changeset(tmp_path)
    changeset.set("tasks.py", edit(LF))
    diff = changeset.diff()
    assert "+# added\r\n" in diff and " import torch\r\n" in diff
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "apply", "-"], cwd=tmp_path, input=diff.encode(), check=True)
    assert (tmp_path / "tasks.py").read_bytes() == edit(LF).replace("\n", "\r\n").encode()
