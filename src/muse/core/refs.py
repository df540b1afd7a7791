"""Refs (branches, tags, remote-tracking refs) and HEAD, updated atomically.

Each ref is a file ``.muse/<ref name>`` holding the 64-hex id and a newline. An update takes
``<file>.lock`` (:mod:`muse.core.lockfile`: O_CREAT|O_EXCL, so two writers cannot interleave),
checks the current value against what the caller expected (compare-and-swap), writes the lock
file and renames it over the ref. Ref writes are durable (fsync of the file and directory).
HEAD is ``ref: refs/heads/<branch>`` (attached) or a bare id (detached).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from muse.core.lockfile import LockFile, LockHeld
from muse.core.refnames import HEADS, RefNameError, check_ref_name
from muse.errors import MuseError, Rejected


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()
"""expected_old value meaning: do not check the current value."""


class RefError(MuseError):
    """A ref or HEAD that cannot be read (corrupt file)."""


class RefConflict(RefError, Rejected):
    """A ref did not hold the value the caller expected, or is locked by someone else."""

    hint = "another muse command is running? try again"


class RefLocked(RefConflict, LockHeld):
    """A ref or HEAD whose ``.lock`` file exists: another writer holds it, or a crashed one
    left it (the hint names the file to remove)."""


class RefStore:
    def __init__(self, muse_dir: str) -> None:
        self.muse_dir = muse_dir

    def _path(self, ref: str) -> str:
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
    def update(self, ref: str, new: bytes | None, expected_old: bytes | None | _Any = ANY) -> None:
        """Set (or delete, new=None) a ref if it currently holds expected_old.

        expected_old=None means "must not exist"; ANY skips the check. Raises RefConflict.
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
                self._prune_dirs(os.path.dirname(path))
                return
            lock.write(new.hex().encode() + b"\n")

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

    def set_head(self, ref: str) -> None:
        """Attach HEAD to a branch (which may not exist yet: an unborn branch)."""
        check_ref_name(ref)
        if not ref.startswith(HEADS):
            raise RefNameError(f"HEAD can only point at a branch, not {ref}")
        self._write_head(f"ref: {ref}\n")

    def set_head_detached(self, oid: bytes) -> None:
        if len(oid) != 32:
            raise ValueError("HEAD must point at a 32-byte id")
        self._write_head(oid.hex() + "\n")

    def _lock_head(self) -> LockFile:
        return LockFile(self._head_path(), durable=True, what="HEAD", error=RefLocked)

    def _write_head(self, text: str) -> None:
        with self._lock_head() as lock:
            lock.write(text.encode())

    def update_head(self, new: bytes, expected_old: bytes | None | _Any = ANY) -> None:
        """Move what HEAD points at: its branch if attached, HEAD itself if detached."""
        ref, cur = self.head()
        if ref is not None:
            self.update(ref, new, expected_old)
            return
        if len(new) != 32:
            raise ValueError("HEAD must point at a 32-byte id")
        with self._lock_head() as lock:  # compare-and-swap under HEAD.lock
            ref, cur = self.head()
            if expected_old is not ANY and (ref is not None or cur != expected_old):
                now = f"at {ref}" if ref is not None else f"at {_show(cur)}"
                raise RefConflict(f"HEAD is {now}, expected {_show(expected_old)}")
            lock.write(new.hex().encode() + b"\n")


def _show(oid: object) -> str:
    if oid is None:
        return "nothing"
    if isinstance(oid, bytes):
        return oid.hex()[:12]
    return repr(oid)
