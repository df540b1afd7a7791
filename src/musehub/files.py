"""File modes on the hub's host: what the hub writes is its own user's alone.

Private repositories live in these files (packs, indexes, ``musehub.db``, uploads, the
cache, quarantines, the secret key), so no other local user may read them: directories are
0700 and files 0600 (packs, which are never written again, 0400).

- :func:`private_process` sets the umask 077 in every ``musehub`` process (worker processes
  inherit it), so whatever the hub or its libraries (SQLite, tempfile) create is private;
- :func:`secure_data_dir` runs when the hub starts: it makes the data directory (and the
  cache directory and SQLite database wherever they are) private, which also covers what an
  earlier version or another tool created there with looser modes;
- :func:`private_file` strips the group and other bits of one file, for the packs that
  ``muse.core.pack.write`` makes read-only (0444, as git does for a user's own packs).
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from musehub.config import Settings

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700


def private_process() -> None:
    """From now on, files and directories this process (and its children) creates are
    its user's alone."""
    os.umask(PRIVATE_UMASK)


def private_file(path: str | os.PathLike[str]) -> None:
    """Remove the group and other permission bits of ``path`` (the owner's stay)."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & PRIVATE_UMASK:
        os.chmod(path, mode & ~PRIVATE_UMASK)


def private_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` (0700) if needed, and make an existing one 0700."""
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    if stat.S_IMODE(os.stat(path).st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)


def secure_data_dir(settings: Settings) -> None:
    """The data directory and cache directory 0700; the files directly in the data
    directory (database, its WAL, lock files, the secret key) and a SQLite database kept
    elsewhere 0600. Deeper files are not walked: a 0700 directory already hides them."""
    private_dir(settings.data_dir)
    private_dir(settings.cache_dir)
    with os.scandir(settings.data_dir) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                private_file(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                private_file(entry.path)  # objects/, cache/: no group or other access
    db = sqlite_path(settings.database_url)
    if db is not None:
        for path in (db, db + "-wal", db + "-shm", db + "-journal"):
            if os.path.isfile(path):
                private_file(path)


def sqlite_path(url: str) -> str | None:
    """The database file of a ``sqlite:///`` URL (None for another database or memory)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return os.path.abspath(parsed.database)
