"""What a Windows machine needs, tested on Linux: no POSIX-only import, the lock without fcntl, Windows paths."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import types
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from yamlforge.errors import YamlforgeError
from yamlforge.patch.lock import hold_checkout
from yamlforge.patch.manifest import recorded_file, recorded_path
from yamlforge.patch.writer import writable_hint
from yamlforge.target_python import interpreter_in, resolve_python

PACKAGE = Path(__file__).resolve().parents[2] / "yamlforge"
POSIX_ONLY = {"fcntl", "termios", "pwd", "grp", "resource", "tty", "pty", "posix", "crypt", "syslog"}


def module_level_imports(source: str) -> set[str]:
    """Top-level module names imported when the module loads (also under a module-level ``if`` or ``try``)."""
    names: set[str] = set()
    body = list(ast.parse(source).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
        elif isinstance(node, (ast.If, ast.Try)):
            body.extend(node.body + node.orelse + getattr(node, "finalbody", []))
            body.extend(n for handler in getattr(node, "handlers", []) for n in handler.body)
    return names


def test_no_module_of_the_package_imports_a_posix_only_module_when_it_loads():
    found = {path.relative_to(PACKAGE).as_posix(): sorted(module_level_imports(path.read_text()) & POSIX_ONLY)
             for path in sorted(PACKAGE.rglob("*.py"))}
    assert {path: names for path, names in found.items() if names} == {}


@pytest.mark.parametrize("source", ["import fcntl\n", "import os, termios\n", "if True:\n    import pwd\n",
                                    "try:\n    from resource import getrusage\nexcept ImportError:\n    pass\n"])
def test_the_import_scan_finds_a_posix_only_import(source):
    assert module_level_imports(source) & POSIX_ONLY


def test_the_import_scan_leaves_imports_inside_functions_alone():
    assert not module_level_imports("def f():\n    import fcntl\n") & POSIX_ONLY


# ----------------------------------------------------------------------------- the lock without fcntl

HOLD = """
import sys, time
sys.modules["fcntl"] = None  # as on Windows: `import fcntl` fails
from yamlforge.errors import YamlforgeError
from yamlforge.patch.lock import hold_checkout
try:
    lock = hold_checkout(sys.argv[1], timeout=float(sys.argv[2]))
except YamlforgeError as exc:
    print("refused:", exc, flush=True)
    sys.exit(0)
print("held", flush=True)
if sys.argv[3] == "keep":
    sys.stdin.read()
"""


def hold(root: Path, cache: Path, timeout: float, keep: bool) -> subprocess.Popen:
    env = dict(os.environ, YAMLFORGE_CACHE=str(cache), PYTHONPATH=str(PACKAGE.parent))
    return subprocess.Popen([sys.executable, "-c", HOLD, str(root), str(timeout), "keep" if keep else "go"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_the_lock_works_without_fcntl_is_exclusive_and_dies_with_its_holder(tmp_path):
    checkout, cache = tmp_path / "checkout", tmp_path / "cache"
    checkout.mkdir()
    holder = hold(checkout, cache, 10, keep=True)
    try:
        assert holder.stdout.readline() == "held\n", holder.stderr.read()
        second = hold(checkout, cache, 0.2, keep=False)
        out, err = second.communicate(timeout=60)
        assert out.startswith("refused: another yamlforge run is still changing this checkout"), err
        os.kill(holder.pid, signal.SIGKILL)  # no clean-up runs: the OS must drop the lock
        holder.wait(timeout=60)
        third = hold(checkout, cache, 0, keep=False)
        out, err = third.communicate(timeout=60)
        assert out == "held\n", err
    finally:
        holder.kill()
        holder.communicate()
    assert list(checkout.iterdir()) == []  # nothing in the checkout: the lock file is in the cache
    assert [p.suffix for p in (cache / "locks").iterdir()] == [".lock"]


def test_on_windows_the_lock_is_msvcrt_locking_of_the_first_byte(monkeypatch, tmp_path):
    """The Windows branch, run on Linux through a stand-in ``msvcrt`` that records its calls and can refuse."""
    calls, refuse = [], []

    def locking(fd: int, mode: int, nbytes: int) -> None:
        calls.append((os.lseek(fd, 0, os.SEEK_CUR), mode, nbytes))
        if refuse:
            raise OSError(36, "Resource deadlock avoided")  # what msvcrt raises for a byte another process holds

    monkeypatch.setitem(sys.modules, "msvcrt", types.SimpleNamespace(LK_NBLCK=2, locking=locking))
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("YAMLFORGE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "checkout").mkdir()
    hold_checkout(tmp_path / "checkout").release()
    assert calls == [(0, 2, 1)]
    refuse.append(True)
    with pytest.raises(YamlforgeError, match="another yamlforge run is still changing this checkout"):
        hold_checkout(tmp_path / "checkout", timeout=0)
    assert list((tmp_path / "checkout").iterdir()) == []


# ----------------------------------------------------------------------------- Windows paths

@pytest.mark.parametrize(("env", "present", "expected"), [
    pytest.param(PureWindowsPath(r"C:\Users\me\venv"), [r"C:\Users\me\venv\Scripts\python.exe"],
                 r"C:\Users\me\venv\Scripts\python.exe", id="windows-venv"),
    pytest.param(PureWindowsPath(r"D:\Anaconda\envs\yolo"), [r"D:\Anaconda\envs\yolo\python.exe"],
                 r"D:\Anaconda\envs\yolo\python.exe", id="conda-env"),
    pytest.param(PureWindowsPath(r"D:\Anaconda\envs\yolo"), [], None, id="windows-folder-without-python"),
    pytest.param(PurePosixPath("/home/me/venv"), ["/home/me/venv/bin/python"], "/home/me/venv/bin/python",
                 id="posix-venv"),
])
def test_an_environment_folder_names_its_interpreter(env, present, expected):
    found = interpreter_in(env, lambda path: str(path) in present)
    assert (None if found is None else str(found)) == expected


def test_python_accepts_an_environment_folder(tmp_path):
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    assert resolve_python(str(tmp_path / "venv")) == str(python)


@pytest.mark.parametrize(("path", "root", "expected"), [
    pytest.param(PureWindowsPath(r"C:\work\repo\specs\mine.yaml"), PureWindowsPath(r"C:\work\repo"),
                 "specs/mine.yaml", id="windows-inside-the-checkout"),
    pytest.param(PureWindowsPath(r"C:\Work\Repo\specs\mine.yaml"), PureWindowsPath(r"c:\work\repo"),
                 "specs/mine.yaml", id="windows-paths-ignore-case"),
    pytest.param(PureWindowsPath(r"D:\specs\mine.yaml"), PureWindowsPath(r"C:\work\repo"), "D:/specs/mine.yaml",
                 id="windows-outside-the-checkout"),
    pytest.param(PurePosixPath("/home/me/repo/specs/mine.yaml"), PurePosixPath("/home/me/repo"), "specs/mine.yaml",
                 id="posix-inside"),
])
def test_the_manifest_records_portable_paths(path, root, expected):
    assert recorded_path(path, root) == expected
    assert "\\" not in recorded_path(path, root)


def test_a_recorded_relative_path_is_found_from_the_checkout(tmp_path):
    assert recorded_file("specs/mine.yaml", tmp_path) == tmp_path / "specs" / "mine.yaml"
    assert recorded_file("/elsewhere/mine.yaml", tmp_path) == Path("/elsewhere/mine.yaml")


def test_the_read_only_hint_is_a_command_of_the_users_shell(monkeypatch):
    assert writable_hint(Path("/repo/my tasks.py")) == "chmod u+w '/repo/my tasks.py'"
    monkeypatch.setattr(os, "name", "nt")
    assert writable_hint(PureWindowsPath(r"C:\my repo\tasks.py")) == r'attrib -r "C:\my repo\tasks.py"'
