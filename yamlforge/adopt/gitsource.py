"""Git sources for ``adopt``: ``git+URL@REV#path/in/repo`` is checked out once into the cache, then read as a path.

A user finds a paper's block in its repository; the revision pins what was probed. Each (URL, revision) gets its
own folder under ``$YAMLFORGE_CACHE/adopt-git`` (written to a temporary folder first, renamed when complete), so a
second adopt of the same source runs no git at all.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import YamlforgeError
from ..scratch import cache_dir
from ..target_python import RunnerAnswer

PREFIX = "git+"
GIT_TIMEOUT = 300  # seconds for a clone: a large repository over a slow network
# git+URL[@REV][#PATH]; the revision's @ is the last one after the URL's own path (ssh URLs have user@host)
SOURCE = re.compile(r"git\+(?P<url>[^#]+?)(?:@(?P<rev>[\w./-]+))?(?:#(?P<path>.*))?")


def is_git_source(text: str) -> bool:
    return str(text).startswith(PREFIX)


def fetch(text: str) -> Path:
    """The local path of ``git+URL@REV#PATH``: the file or folder PATH of the checked-out revision."""
    match = SOURCE.fullmatch(text)
    if match is None or "://" not in match["url"]:
        raise YamlforgeError(f"'{text}' is not git+URL@REV#PATH", where="SOURCE",
                             hint="e.g. git+https://github.com/owner/repo@v1.0#models/block.py::Block")
    url, rev, path = match["url"], match["rev"] or "HEAD", match["path"] or ""
    folder = cache_dir() / "adopt-git" / hashlib.sha256(f"{url}@{rev}".encode()).hexdigest()[:20]
    if not folder.is_dir():
        _checkout(url, rev, folder)
    found = (folder / path).resolve()
    if not found.is_relative_to(folder.resolve()) or not found.exists():
        raise YamlforgeError(f"'{path}' is not in {url} at {rev}", where="SOURCE",
                             hint="the part after # is a file or folder path inside the repository")
    return found


def _checkout(url: str, rev: str, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".partial-") as tmp:
        work = Path(tmp) / "checkout"
        _git(["clone", "--quiet", "--no-checkout", url, str(work)], url)
        _git(["-C", str(work), "checkout", "--quiet", "--detach", rev], f"{url}@{rev}")
        shutil.rmtree(work / ".git")  # only the files adopt reads are kept
        work.rename(folder)


def _git(args: list[str], what: str) -> None:
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, timeout=GIT_TIMEOUT, check=False)
    except FileNotFoundError:
        raise YamlforgeError("git is not installed, so a git+ source cannot be fetched", where="SOURCE",
                             hint="install git, or clone the repository yourself and pass the path") from None
    except subprocess.TimeoutExpired:
        raise YamlforgeError(f"git did not finish fetching {what} within {GIT_TIMEOUT} s", where="SOURCE") from None
    if result.returncode:  # git's last stderr line says why, as a runner's would
        last = RunnerAnswer(None, result.stderr).tail(1, empty="no output")
        raise YamlforgeError(f"git could not fetch {what}: {last}", where="SOURCE")
