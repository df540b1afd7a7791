"""Lock files and atomic writes: the one way Muse replaces a file in place.

A writer creates ``<path>.lock`` with O_CREAT|O_EXCL, so a second writer fails at once instead
of interleaving; writes the new content into the lock file; renames it over ``path``. A reader
sees the old content or the new, never a mixture. Any exception before the rename (the
``with`` block raising, a failed write, a full disk) aborts: the lock file is removed and
``path`` is untouched. A process killed in between leaves the lock file behind and the old
content in place.

A *durable* write also calls fsync on the file before the rename and on the directory after it,
so the new content and its name survive a power cut once the call returns (git's
``core.fsync``; see docs/format.md "Atomic writes and durability" for which files are durable).

Stale locks are never stolen (as in git): a lock file held by someone else raises
:class:`LockHeld` (or the subclass the caller names), whose hint tells the user which file to
remove when no other command is running.

Content-addressed files (loose objects) need no lock: every writer writes the same bytes. For
them ``lock=False`` uses a temporary name unique to the writer (``.tmp-<pid>-<n>-<name>``) in
the same directory, created with O_EXCL too, and the same write, sync and rename path.

Usage::

    with LockFile(path, durable=True, what="ref refs/heads/main") as lock:
        lock.write(data)          # committed (renamed into place) when the block ends
    write_atomic(path, data)      # the same in one call
"""

from __future__ import annotations

import errno
import itertools
import os
from types import TracebackType

from muse.core.fileio import write_all
from muse.errors import Rejected

__all__ = [
    "LOCK_SUFFIX",
    "TMP_PREFIX",
    "LockFile",
    "LockHeld",
    "fsync_dir",
    "fsync_file",
    "process_alive",
    "write_atomic",
]

LOCK_SUFFIX = ".lock"
TMP_PREFIX = ".tmp-"

_counter = itertools.count()  # unique temporary names across threads of one process
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
# fsync on a directory is not supported everywhere (some network and FUSE file systems)
_DIR_SYNC_UNSUPPORTED = frozenset(
    getattr(errno, name, -1) for name in ("EINVAL", "ENOTSUP", "EOPNOTSUPP", "EBADF")
)


class LockHeld(Rejected):
    """A file is locked: its ``.lock`` file exists (another command, or one that crashed)."""

    lock_path = ""


def _locked(error: type[LockHeld], what: str, lock_path: str) -> LockHeld:
    e = error(
        f"{what} is locked by another process ({lock_path} exists)",
        hint=f"wait for the other muse command to finish; if none is running, remove {lock_path}",
    )
    e.lock_path = lock_path
    return e


def fsync_dir(path: str) -> None:
    """Make the names in a directory durable (after a rename or a new file in it)."""
    try:
        fd = os.open(path or ".", _DIR_FLAGS)
    except OSError:
        return  # e.g. Windows: directories cannot be opened (nor need to be)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _DIR_SYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


class LockFile:
    """A lock on ``path`` and the new content for it; a context manager.

    Entering takes the lock unless :meth:`acquire` took it already (raises ``error`` when
    it is held, FileNotFoundError when the directory is missing). Leaving the block
    normally commits (renames the new content over ``path``) unless :meth:`commit`,
    :meth:`commit_delete` or :meth:`abort` was called already; leaving it by an exception
    aborts. ``mode`` is the new file's mode (less the umask). ``what`` names the file in the
    error message (default: its path).
    """

    __slots__ = ("_fd", "_what", "durable", "error", "lock", "lock_path", "mode", "path")

    def __init__(
        self,
        path: str,
        *,
        durable: bool = False,
        mode: int = 0o666,
        what: str | None = None,
        error: type[LockHeld] = LockHeld,
        lock: bool = True,
    ) -> None:
        self.path = path
        self.durable = durable
        self.mode = mode
        self.error = error
        self.lock = lock
        self._what = what
        self.lock_path = path + LOCK_SUFFIX if lock else ""
        self._fd = -1

    # --------------------------------------------------------------------------- acquire
    def acquire(self) -> LockFile:
        if self._fd >= 0:
            raise RuntimeError(f"{self.lock_path} is already held")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        if self.lock:
            try:
                self._fd = os.open(self.lock_path, flags, self.mode)
            except FileExistsError:
                raise _locked(self.error, self._what or self.path, self.lock_path) from None
            return self
        head, tail = os.path.split(self.path)
        while True:  # a name left by a crashed process with the same pid: take the next one
            self.lock_path = os.path.join(
                head, f"{TMP_PREFIX}{os.getpid()}-{next(_counter)}-{tail[:16]}"
            )
            try:
                self._fd = os.open(self.lock_path, flags, self.mode)
                return self
            except FileExistsError:
                continue

    def __enter__(self) -> LockFile:
        return self if self._fd >= 0 else self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self._fd >= 0:
            self.commit()

    @property
    def held(self) -> bool:
        return self._fd >= 0

    @property
    def fd(self) -> int:
        """The open lock file (for writes the helper does not make itself, e.g. fchmod)."""
        if self._fd < 0:
            raise RuntimeError(f"the lock on {self.path} is not held")
        return self._fd

    # ----------------------------------------------------------------------------- write
    def write(self, data: bytes | bytearray | memoryview) -> None:
        write_all(self.fd, data)

    # ------------------------------------------------------------------- commit / abort
    def commit(self) -> None:
        """Put the new content in place (fsync first when durable); releases the lock."""
        fd = self.fd
        self._fd = -1
        try:
            try:
                if self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.lock_path, self.path)
        except BaseException:
            _unlink(self.lock_path)
            raise
        if self.durable:
            fsync_dir(os.path.dirname(self.path))

    def commit_delete(self) -> None:
        """Remove ``path`` (if it exists) under the lock, then release the lock."""
        fd = self.fd
        self._fd = -1
        os.close(fd)
        try:
            _unlink(self.path)
        finally:
            _unlink(self.lock_path)
        if self.durable:
            fsync_dir(os.path.dirname(self.path))

    def abort(self) -> None:
        """Drop the new content and the lock; ``path`` is untouched. Safe to call twice."""
        fd = self._fd
        if fd < 0:
            return
        self._fd = -1
        try:
            os.close(fd)
        finally:
            _unlink(self.lock_path)


def fsync_file(path: str) -> None:
    """Make a file's data durable (cheap when it already is, as a verified pack is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(
    path: str,
    data: bytes | bytearray | memoryview,
    *,
    durable: bool = False,
    mode: int = 0o666,
    what: str | None = None,
    error: type[LockHeld] = LockHeld,
    lock: bool = True,
) -> None:
    """Replace ``path`` with ``data`` through a :class:`LockFile` (same arguments)."""
    with LockFile(path, durable=durable, mode=mode, what=what, error=error, lock=lock) as f:
        f.write(data)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (temporary files and journals
    carry their writer's pid, so leftovers of a killed command can be told from live work)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
