"""Small facts read from files (JSON), kept in the cache while every file they were read from keeps its stamp.

A gen-yaml call reads such facts (tasks.py's layer names, the bundled specs' names) in a fraction of the time
parsing their files costs; a changed, moved or missing file makes the entry stale and the facts are read again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from .resources import cache_dir


def entry_file(folder: str, key: str) -> Path:
    """The cache file of ``key`` (a path, usually) in the cache's ``folder``."""
    return cache_dir() / folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _stamp(path: Path) -> list:
    """What says a file is unchanged: its path, mtime in nanoseconds and size."""
    info = path.stat()
    return [str(path), info.st_mtime_ns, info.st_size]


def read(entry: Path):
    """The value kept in ``entry``, or None when there is none or a file it was read from has changed."""
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
        if data["files"] and all(_stamp(Path(stamp[0])) == stamp for stamp in data["files"]):
            return data["value"]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass
    return None


def write(entry: Path, value, read_from: list[Path]) -> None:
    """Keep ``value`` (JSON) read from the files ``read_from``; a cache that cannot be written only costs the next
    call the reading."""
    temporary = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps({"files": [_stamp(p) for p in read_from], "value": value}), encoding="utf-8")
        os.replace(temporary, entry)  # whole or not at all: another process may be reading it
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
