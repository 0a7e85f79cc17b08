"""The one exception family yamlforge raises, and the exit code each kind of problem ends the command with."""

from __future__ import annotations

CHECK_FAILED = 1
BAD_INPUT = 2
INTERNAL = 3


def command_line(*args: object) -> str:
    """A hint's command, quoted for the user's shell (POSIX sh, or Windows' cmd and PowerShell)."""
    import os  # not at the top: only a hint needs it

    words = [str(a) for a in args]
    if os.name == "nt":
        import subprocess

        return subprocess.list2cmdline(words)
    import shlex

    return shlex.join(words)


class YamlforgeError(Exception):
    """A problem the user can fix: printed as one line, never as a traceback.

    ``where`` names the place at fault (``path:line``, ``layer 4``, ``--replace``),
    ``hint`` the command or edit that fixes it, ``exit_code`` is 2 for bad input.
    """

    exit_code = BAD_INPUT

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.where})" if self.where else self.message


class CheckFailed(YamlforgeError):
    """The checkout's state keeps the command from finishing safely, as a failed check would.

    Raised when ``revert`` finds the user's edits overlapping yamlforge's lines; exit 1, like ``--check``.
    """

    exit_code = CHECK_FAILED


class InternalError(YamlforgeError):
    """A bug in yamlforge caught before anything was written (a patch that would not compile); exit 3.

    The message says ``internal error: ...`` so it never reads like a mistake in the user's input.
    """

    exit_code = INTERNAL

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(f"internal error: {message}", where=where, hint=hint or "please report this as a bug")
