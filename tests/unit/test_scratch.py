"""Scratch checkouts: copies of the cached releases, byte-compiled once so that no copy compiles on first import."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from yamlforge.scratch import make_checkout


def test_a_copy_holds_bytecode_its_python_accepts_without_recompiling(tmp_path):
    copy = make_checkout("ultralytics", "8.4.190", tmp_path / "repo")
    source = copy / "ultralytics" / "nn" / "tasks.py"
    pyc = Path(importlib.util.cache_from_source(str(source))).read_bytes()
    stat = source.stat()
    # what the import system checks before it uses a cached .pyc: magic, flags 0 (timestamp-based), mtime, size
    assert pyc[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(pyc[4:8], "little") == 0
    assert int.from_bytes(pyc[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
    assert int.from_bytes(pyc[12:16], "little") == stat.st_size & 0xFFFFFFFF
