"""The stat cache (``.muse/index``): what each tracked file looked like when it was last hashed.

A file whose size, mtime, ctime and inode still match its entry keeps its cached id, so a
no-op status reads no file contents. Entries whose mtime is not older than the index file
itself are "racy" (the file may have changed within the same timestamp tick) and are hashed
again, as git does. The index also records the base tree: the tree the working tree was last
made to match (by commit or checkout), which checkout compares against.

Layout: ``MUSEWTI1`` | base tree id (32 bytes, zeros if none) | n (u32 BE) | n fixed records
``<32s B Q q q Q`` (id, flags, size, mtime_ns, ctime_ns, inode) | n NUL-terminated UTF-8
paths | SHA-256 of everything before it. Files written before the working-tree index had its
own magic start with ``MUSEIDX1`` (the pack index's magic) and are still read.

The file is replaced under ``index.lock`` (:mod:`muse.core.lockfile`; atomic, not fsynced:
it is a cache, as in git): a save while another process holds the lock raises
:class:`IndexLocked`. ``Index.load(path, lock=True)`` takes the lock before reading, so a
read-modify-write (checkout) cannot lose a concurrent update; use it as a context manager so
the lock is released when no save happens.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Iterable
from types import TracebackType

from muse.core.lockfile import LockFile, LockHeld

MAGIC = b"MUSEWTI1"
LEGACY_MAGIC = b"MUSEIDX1"  # older repositories (the pack index's magic): read, never written
_MAGICS = (MAGIC, LEGACY_MAGIC)
_REC = struct.Struct("<32sBQqqQ")
STORED = 0x80  # flag: the blob is known to be in the object store
MODE_MASK = 0x0F


Entry = tuple[bytes, int, int, int, int, int]
"""(id, flags = mode | STORED, size, mtime_ns, ctime_ns, inode): a plain tuple, because a
status of 25,000 files reads 25,000 of them and attribute-free tuples are the fastest."""
E_OID, E_FLAGS, E_SIZE, E_MTIME, E_CTIME, E_INO = range(6)

#: A file at least this large that a command just wrote is worth waiting for (see
#: :meth:`Index.save_settled`): re-hashing it when racy costs about a second per GiB, the
#: wait at most one timestamp tick of the file system (a few ms).
SETTLE_MIN_BYTES = 16 << 20
#: The longest that wait may take.
SETTLE_MAX_S = 0.1


class IndexLocked(LockHeld, OSError):
    """``index.lock`` exists. Also an OSError, so a command that only refreshes the cache
    (status) skips the write as it does in a read-only repository, as git status does."""


def stat_unchanged(entry: Entry, st: os.stat_result, racy_ns: int) -> bool:
    """Whether a file with this stat still holds what the entry recorded (git's stat-cache
    rule: size, mtime, ctime and inode equal, and the entry older than the index file, so
    a change within the same timestamp tick cannot hide)."""
    return (
        entry[3] == st.st_mtime_ns
        and entry[2] == st.st_size
        and entry[4] == st.st_ctime_ns
        and entry[5] == st.st_ino
        and entry[3] < racy_ns
    )


def make_entry(oid: bytes, flags: int, st: os.stat_result) -> Entry:
    return (oid, flags, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class Index:
    def __init__(self, path: str) -> None:
        self.path = path
        self._entries: dict[str, Entry] | None = {}
        self._raw = b""  # the file as read, decoded into entries on first use
        self.base: bytes | None = None
        self.racy_ns = 0  # entries with mtime_ns >= this are not trusted
        self.dirty = False
        self.exists = False
        self.checksum = b""  # the file's trailing SHA-256 as read or last saved
        self._lock: LockFile | None = None

    @property
    def entries(self) -> dict[str, Entry]:
        """path -> Entry. Decoded from the file on first use: a status that the file-system
        monitor answers (nothing changed) needs only the file's checksum."""
        if self._entries is None:
            self._entries = self._decode(self._raw)
            self._raw = b""
        return self._entries

    @entries.setter
    def entries(self, value: dict[str, Entry]) -> None:
        self._entries = value
        self._raw = b""

    def _new_lock(self) -> LockFile:
        return LockFile(self.path, what="the index", error=IndexLocked)

    @classmethod
    def load(cls, path: str, *, lock: bool = False) -> Index:
        """Read an index (missing or corrupt: empty and dirty). ``lock=True`` takes
        ``index.lock`` first and holds it until :meth:`save` or :meth:`unlock`."""
        idx = cls(path)
        if not lock:
            idx._read()
            return idx
        idx._lock = idx._new_lock().acquire()
        try:
            idx._read()
        except BaseException:
            idx.unlock()
            raise
        return idx

    def __enter__(self) -> Index:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unlock()

    def unlock(self) -> None:
        """Release a lock taken by ``load(lock=True)`` without writing (no-op otherwise)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.abort()

    def _read(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except FileNotFoundError:
            return
        self.racy_ns = st.st_mtime_ns
        if (
            len(data) < 76
            or data[:8] not in _MAGICS
            or hashlib.sha256(data[:-32]).digest() != data[-32:]
        ):
            self.dirty = True  # corrupt: start afresh (it is only a cache)
            return
        n = int.from_bytes(data[40:44], "big")
        end = 44 + _REC.size * n
        if end > len(data) - 32 or data[end:-32].count(b"\0") != n:
            self.dirty = True
            return
        self.exists = True
        self.checksum = data[-32:]
        base = data[8:40]
        self.base = None if base == bytes(32) else base
        self._raw = data
        self._entries = None

    @staticmethod
    def _decode(data: bytes) -> dict[str, Entry]:
        n = int.from_bytes(data[40:44], "big")
        end = 44 + _REC.size * n
        names = data[end:-32].decode("utf-8", "surrogateescape").split("\0")
        return dict(zip(names, _REC.iter_unpack(data[44:end]), strict=False))  # type: ignore[arg-type]

    def save(self) -> None:
        """Write atomically under ``index.lock`` (the one held since load, or taken now;
        IndexLocked if someone else holds it); afterwards entries at least as new as the
        file count as racy."""
        items = sorted(self.entries.items())
        parts = [
            MAGIC,
            self.base or bytes(32),
            len(items).to_bytes(4, "big"),
            b"".join([_REC.pack(*e) for _, e in items]),
            b"".join([p.encode("utf-8", "surrogateescape") + b"\0" for p, _ in items]),
        ]
        data = b"".join(parts)
        data += hashlib.sha256(data).digest()
        lock, self._lock = self._lock or self._new_lock(), None
        with lock:
            lock.write(data)
        self.dirty = False
        self.exists = True
        self.checksum = data[-32:]
        try:
            self.racy_ns = os.stat(self.path).st_mtime_ns
        except OSError:
            pass

    def save_settled(self, written: Iterable[Entry]) -> None:
        """:meth:`save`; then, when a large file among the ``written`` entries would be racy
        against it (written within the index's own timestamp tick, which is what happens when
        a checkout saves the index right after restoring a file), wait for the file-system
        clock to move on and save again, so the next command trusts that entry instead of
        re-hashing the whole file: a pull of a 1 GiB file right after its clone re-read it
        all to prove it unchanged (1.2 s of a 2.1 s pull)."""
        self.save()
        _settle(self, written)


def _settle(index: Index, written: Iterable[Entry]) -> None:
    large = (mtime for _id, _flags, size, mtime, _ct, _ino in written if size >= SETTLE_MIN_BYTES)
    newest = max(large, default=None)
    if newest is None:
        return
    deadline = time.monotonic() + SETTLE_MAX_S
    while index.racy_ns <= newest and time.monotonic() < deadline:
        time.sleep(0.002)
        try:
            index.save()
        except IndexLocked:
            return  # another command holds it now: the first save stands


def load_index(muse_dir: str, *, lock: bool = False) -> Index:
    return Index.load(os.path.join(muse_dir, "index"), lock=lock)
