"""User-facing errors of the `muse` command and their exit codes.

Commands raise UserError for anything the user can fix; main prints it as one line
(``muse: error: <message>``) and exits with its code, never with a traceback.
"""

from __future__ import annotations

GENERAL = 1
USAGE = 2
NOT_FOUND = 3
NO_ACCESS = 4
REJECTED = 5
NETWORK = 6
HUB_REFUSED = 7
CONFLICT = 8


class UserError(Exception):
    """A mistake or refusal the user should see as one line, with a specific exit code."""

    def __init__(self, message: str, exit_code: int = GENERAL) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


def merge_conflict(paths: list[str]) -> UserError:
    """The one message for a merge that stopped on conflicts (muse merge and muse pull)."""
    shown = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
    return UserError(
        f"merge conflict in {shown}: fix the marked files, then 'muse commit' "
        "(or 'muse merge --abort')",
        CONFLICT,
    )
