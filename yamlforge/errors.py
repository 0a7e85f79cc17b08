"""The one exception family yamlforge raises for user-facing problems."""

from __future__ import annotations

BAD_INPUT = 2
CHECK_FAILED = 1


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
    """A check the user asked for did not pass (``--check`` found work, verification failed)."""

    exit_code = CHECK_FAILED
