"""One writer at a time per checkout: an exclusive OS lock on a lock file kept outside the checkout.

The lock file lives in yamlforge's cache (``locks/<hash of the checkout's resolved path>.lock``), never in the
checkout: nothing is created there (dry runs leave no trace, a full revert can remove ``.yamlforge/``). The OS drops
the lock when the process dies, so a killed run never leaves a stale lock behind (a lock file left in the cache is
empty and locks nothing). POSIX systems lock it with ``os.lockf`` (``fcntl`` is not needed), Windows with
``msvcrt.locking``, imported only there. Whoever takes the lock first rolls back a run that was killed half-way
(:mod:`yamlforge.patch.journal`).

Within one process the lock is shared: a plan takes it before reading the checkout and keeps it until the writer
has written that plan (or the plan is dropped); the writer called for that plan reuses it, so nothing waits on
itself. (POSIX record locks belong to the process, so the lock file is opened once per process and key.)
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import time
import weakref
from pathlib import Path

from ..errors import YamlforgeError
from ..resources import cache_dir
from .journal import interrupted, recover

TIMEOUT = 120.0  # seconds a second run waits for the first one before giving up
POLL = 0.05

_held: weakref.WeakValueDictionary[str, CheckoutLock] = weakref.WeakValueDictionary()


class CheckoutLock:
    """This process's hold on one checkout; released by :meth:`release` or when the last reference goes."""

    def __init__(self, root: Path, fd: int):
        self.root = root
        self.recovered: str | None = None  # what was done about an interrupted run when the lock was taken
        self._close = weakref.finalize(self, os.close, fd)

    @property
    def held(self) -> bool:
        return self._close.alive

    def release(self) -> None:
        self._close()


def hold_checkout(root: Path, timeout: float = TIMEOUT) -> CheckoutLock:
    """Hold ``root`` for this process (waiting, with a message, for another run), then roll back a killed run."""
    key = os.path.realpath(root)
    lock = _held.get(key)
    if lock is not None and lock.held:
        return lock
    if not os.path.isdir(key):
        raise YamlforgeError("cannot open the checkout (not a folder)", where=key)
    path = lock_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise YamlforgeError(f"cannot create the checkout's lock file ({exc.strerror})", where=str(path),
                             hint="make the folder writable, or set YAMLFORGE_CACHE to a writable folder") from None
    try:
        _wait(fd, key, timeout)
    except BaseException:
        os.close(fd)
        raise
    lock = _held[key] = CheckoutLock(Path(key), fd)
    lock.recovered = recover(lock.root)
    if lock.recovered:
        _say(lock.recovered)
    return lock


def lock_file(key: str) -> Path:
    """The lock file of the checkout at the resolved path ``key``: in the cache, one per checkout."""
    digest = hashlib.sha256(os.path.normcase(key).encode("utf-8")).hexdigest()[:32]
    return cache_dir() / "locks" / f"{digest}.lock"


def recover_interrupted(root: Path) -> str | None:
    """For commands that only read the checkout: roll back a run killed half-way (if any), say what was done."""
    if not interrupted(root):
        return None
    lock = hold_checkout(root)
    message = lock.recovered
    lock.release()
    return message


def _wait(fd: int, root: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = False
    while not _try_lock(fd):
        if time.monotonic() > deadline:
            raise YamlforgeError(f"another yamlforge run is still changing this checkout after {timeout:g} s; "
                                 "nothing was changed", where=root,
                                 hint="wait for it to finish (or stop it), then run the command again")
        if not waiting:
            _say(f"waiting for another yamlforge run to finish in {root}")
            waiting = True
        time.sleep(POLL)


def _try_lock(fd: int) -> bool:
    """Lock the first byte of the lock file without waiting; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt  # Windows only

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        os.lockf(fd, os.F_TLOCK, 0)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


def _say(message: str) -> None:
    """The lock's news goes straight to stderr: it happens before the command has anything to return."""
    print(f"note: {message}", file=sys.stderr, flush=True)
