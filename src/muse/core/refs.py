"""Refs (branches, tags, remote-tracking refs) and HEAD, updated atomically.

Each ref is a file ``.muse/<ref name>`` holding the 64-hex id and a newline. An update takes
``<file>.lock`` (:mod:`muse.core.lockfile`: O_CREAT|O_EXCL, so two writers cannot interleave),
checks the current value against what the caller expected (compare-and-swap), writes the lock
file and renames it over the ref. Ref writes are durable (fsync of the file and directory).
HEAD is ``ref: refs/heads/<branch>`` (attached) or a bare id (detached).

Every update of HEAD, a branch, a remote-tracking branch or the stash also appends a line to
its reflog (muse.core.reflog) while the lock is held; an update of the branch HEAD is
attached to is logged for HEAD too, as git does. ``log=`` is the entry's message (default:
the muse command line that made the change).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from muse.core import reflog as _reflog
from muse.core.lockfile import LockFile, LockHeld
from muse.core.refnames import HEADS, RefNameError, check_ref_name
from muse.errors import MuseError, Rejected


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()
"""expected_old value meaning: do not check the current value."""

STASH = "refs/stash"


class RefError(MuseError):
    """A ref or HEAD that cannot be read (corrupt file)."""


class RefConflict(RefError, Rejected):
    """A ref did not hold the value the caller expected, or is locked by someone else."""

    hint = "another muse command is running? try again"


class RefLocked(RefConflict, LockHeld):
    """A ref or HEAD whose ``.lock`` file exists: another writer holds it, or a crashed one
    left it (the hint names the file to remove)."""


class RefStore:
    def __init__(self, muse_dir: str, who: _reflog.Who | None = None) -> None:
        self.muse_dir = muse_dir
        self.who = who  # the reflog's "who when" (default: the OS user, now)

    # ----------------------------------------------------------------------------- reflog
    def _log(self, ref: str, old: bytes | None, new: bytes | None, log: str | None) -> None:
        if not _reflog.logged(ref):
            return
        name, email, when, tz = (self.who or _os_identity)()
        entry = _reflog.Entry(
            old or _reflog.ZERO, new or _reflog.ZERO, name, email, when, tz, log or _command()
        )
        _reflog.append(self.muse_dir, ref, entry)

    def _attached_to(self, ref: str) -> bool:
        try:
            with open(self._head_path(), encoding="utf-8") as f:
                return f.read().strip() == f"ref: {ref}"
        except OSError:
            return False

    def _path(self, ref: str) -> str:
        if ref != STASH:  # git's one two-part ref; local only (the wire's names are checked)
            check_ref_name(ref)
        return os.path.join(self.muse_dir, *ref.split("/"))

    # ------------------------------------------------------------------------------- read
    def read(self, ref: str) -> bytes | None:
        """The id a ref points at, or None if it does not exist."""
        try:
            with open(self._path(ref), "rb") as f:
                text = f.read().strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            oid = bytes.fromhex(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            raise RefError(f"ref {ref} is corrupt") from None
        if len(oid) != 32:
            raise RefError(f"ref {ref} is corrupt")
        return oid

    def list(self, prefix: str = "refs/") -> dict[str, bytes]:
        """Every ref whose name starts with prefix, sorted by name."""
        out: dict[str, bytes] = {}
        base = os.path.join(self.muse_dir, "refs")
        for name in sorted(self._walk(base, "refs")):
            if name.startswith(prefix):
                oid = self.read(name)
                if oid is not None:
                    out[name] = oid
        return out

    def _walk(self, path: str, name: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError):
            return
        for e in entries:
            if e.name.endswith(".lock") or e.name.startswith("."):
                continue
            if e.is_dir(follow_symlinks=False):
                yield from self._walk(e.path, f"{name}/{e.name}")
            elif e.is_file(follow_symlinks=False):
                yield f"{name}/{e.name}"

    # ------------------------------------------------------------------------------ write
    def update(
        self,
        ref: str,
        new: bytes | None,
        expected_old: bytes | None | _Any = ANY,
        log: str | None = None,
    ) -> None:
        """Set (or delete, new=None) a ref if it currently holds expected_old.

        expected_old=None means "must not exist"; ANY skips the check. Raises RefConflict.
        ``log`` is the reflog message; deleting a ref deletes its reflog (as git).
        """
        path = self._path(ref)
        if new is not None and len(new) != 32:
            raise ValueError("a ref must point at a 32-byte id")
        parent = os.path.dirname(path)
        if new is not None:
            try:
                os.makedirs(parent, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise RefConflict(f"cannot create {ref}: a ref is in the way") from None
            if os.path.isdir(path):
                raise RefConflict(f"cannot create {ref}: refs exist below it")
        lock = LockFile(path, durable=True, what=f"ref {ref}", error=RefLocked)
        try:
            lock.acquire()
        except FileNotFoundError:  # deleting a ref whose directory does not exist
            if expected_old is not ANY and expected_old is not None:
                raise RefConflict(f"ref {ref} does not exist") from None
            return
        with lock:
            current = self.read(ref)
            if expected_old is not ANY and current != expected_old:
                raise RefConflict(
                    f"ref {ref} is at {_show(current)}, expected {_show(expected_old)}"
                )
            if new is None:
                lock.commit_delete()
                _reflog.delete(self.muse_dir, ref)
                self._prune_dirs(os.path.dirname(path))
                return
            lock.write(new.hex().encode() + b"\n")
            self._log(ref, current, new, log)
            if self._attached_to(ref):
                self._log("HEAD", current, new, log)

    def _prune_dirs(self, d: str) -> None:
        stop = os.path.join(self.muse_dir, "refs", "heads")
        top = os.path.join(self.muse_dir, "refs")
        while d not in (stop, top) and d.startswith(top + os.sep):
            try:
                os.rmdir(d)
            except OSError:
                return
            d = os.path.dirname(d)

    # ------------------------------------------------------------------------------- HEAD
    def _head_path(self) -> str:
        return os.path.join(self.muse_dir, "HEAD")

    def head(self) -> tuple[str | None, bytes | None]:
        """(branch ref or None when detached, commit id or None on an unborn branch)."""
        with open(self._head_path(), encoding="utf-8") as f:
            text = f.read().strip()
        if text.startswith("ref: "):
            ref = text[5:].strip()
            return ref, self.read(ref)
        try:
            oid = bytes.fromhex(text)
        except ValueError:
            raise RefError("HEAD is corrupt") from None
        if len(oid) != 32:
            raise RefError("HEAD is corrupt")
        return None, oid

    def set_head(self, ref: str, log: str | None = None) -> None:
        """Attach HEAD to a branch (which may not exist yet: an unborn branch)."""
        check_ref_name(ref)
        if not ref.startswith(HEADS):
            raise RefNameError(f"HEAD can only point at a branch, not {ref}")
        self._write_head(f"ref: {ref}\n", self.read(ref), ref[len(HEADS) :], log)

    def set_head_detached(self, oid: bytes, log: str | None = None) -> None:
        if len(oid) != 32:
            raise ValueError("HEAD must point at a 32-byte id")
        self._write_head(oid.hex() + "\n", oid, oid.hex(), log)

    def _lock_head(self) -> LockFile:
        return LockFile(self._head_path(), durable=True, what="HEAD", error=RefLocked)

    def _write_head(self, text: str, new: bytes | None, to: str, log: str | None) -> None:
        with self._lock_head() as lock:
            try:
                ref, old = self.head()
            except (OSError, RefError):
                ref, old = None, None
            lock.write(text.encode())
            if log is None:  # git's words for a checkout
                was = ref[len(HEADS) :] if ref and ref.startswith(HEADS) else None
                was = was or (old.hex() if old else "nothing")
                log = f"checkout: moving from {was} to {to}"
            if old is not None or new is not None:  # an unborn branch to another: no commit
                self._log("HEAD", old, new, log)

    def update_head(
        self, new: bytes, expected_old: bytes | None | _Any = ANY, log: str | None = None
    ) -> None:
        """Move what HEAD points at: its branch if attached, HEAD itself if detached."""
        ref, cur = self.head()
        if ref is not None:
            self.update(ref, new, expected_old, log)
            return
        if len(new) != 32:
            raise ValueError("HEAD must point at a 32-byte id")
        with self._lock_head() as lock:  # compare-and-swap under HEAD.lock
            ref, cur = self.head()
            if expected_old is not ANY and (ref is not None or cur != expected_old):
                now = f"at {ref}" if ref is not None else f"at {_show(cur)}"
                raise RefConflict(f"HEAD is {now}, expected {_show(expected_old)}")
            lock.write(new.hex().encode() + b"\n")
            self._log("HEAD", cur, new, log)


def _os_identity() -> tuple[str, str, int, int]:
    import time

    from muse.core.config import _local_tz_minutes, _os_user

    name, email = _os_user()
    now = time.time()
    return name, email, int(now), _local_tz_minutes(now)


def _command() -> str:
    """The default reflog message: the muse command line, as ``fetch origin`` (git words
    its entries by command too)."""
    import sys

    prog = os.path.basename(sys.argv[0]) if sys.argv else ""
    if prog in ("muse", "__main__.py") and len(sys.argv) > 1:
        return " ".join(sys.argv[1:])[:200]
    return "update"


def _show(oid: object) -> str:
    if oid is None:
        return "nothing"
    if isinstance(oid, bytes):
        return oid.hex()[:12]
    return repr(oid)
