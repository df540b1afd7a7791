"""Exit codes of the `muse` command: the one table from the library's error kinds.

Every layer raises a :class:`muse.errors.MuseError` of some kind; ``muse.cli.main`` prints
it as one line (``muse: error: <message>``) and exits with the code for its kind, never with
a traceback. The codes are documented in docs/client.md.
"""

from __future__ import annotations

from muse.errors import Conflict, MuseError

EXIT_CODES = {
    "general": 1,
    "usage": 2,
    "not_found": 3,
    "no_access": 4,
    "rejected": 5,
    "network": 6,
    "hub_refused": 7,
    "conflict": 8,
}


def exit_code(e: MuseError) -> int:
    return EXIT_CODES.get(e.kind, 1)


def merge_conflict(paths: list[str]) -> Conflict:
    """The one message for a merge that stopped on conflicts (muse merge and muse pull)."""
    shown = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
    return Conflict(
        f"merge conflict in {shown}: fix them, 'muse resolve' each, then 'muse commit' "
        "(or 'muse merge --abort')"
    )
