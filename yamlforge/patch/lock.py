"""One writer at a time per checkout: an exclusive ``flock`` on the checkout's root folder.

The lock is taken on the folder itself, not on a lock file: nothing is created (dry runs leave no trace, a full
revert can remove ``.yamlforge/``), and the kernel drops it when the process dies, so a killed run never leaves a
stale lock behind. Whoever takes the lock first rolls back a run that was killed half-way (:mod:`yamlforge.patch.journal`).

Within one process the lock is shared: a plan takes it before reading the checkout and keeps it until the writer
has written that plan (or the plan is dropped); the writer called for that plan reuses it, so nothing waits on
itself.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
import weakref
from pathlib import Path

from ..errors import YamlforgeError
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
    try:
        fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise YamlforgeError(f"cannot open the checkout ({exc.strerror})", where=key) from None
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
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise YamlforgeError(f"another yamlforge run is still changing this checkout after {timeout:g} s; "
                                     "nothing was changed", where=root,
                                     hint="wait for it to finish (or stop it), then run the command again") from None
            if not waiting:
                _say(f"waiting for another yamlforge run to finish in {root}")
                waiting = True
            time.sleep(POLL)


def _say(message: str) -> None:
    """The lock's news goes straight to stderr: it happens before the command has anything to return."""
    print(f"note: {message}", file=sys.stderr, flush=True)
