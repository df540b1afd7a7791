"""The stat cache (``.muse/index``): what each tracked file looked like when it was last hashed.

A file whose size, mtime, ctime and inode still match its entry keeps its cached id, so a
no-op status reads no file contents. Entries whose mtime is not older than the index file
itself are "racy" (the file may have changed within the same timestamp tick) and are hashed
again, as git does. The index also records the base tree: the tree the working tree was last
made to match (by commit or checkout), which checkout compares against.

Layout: ``MUSEIDX1`` | base tree id (32 bytes, zeros if none) | n (u32 BE) | n fixed records
``<32s B Q q q Q`` (id, flags, size, mtime_ns, ctime_ns, inode) | n NUL-terminated UTF-8
paths | SHA-256 of everything before it.
"""

from __future__ import annotations

import hashlib
import os
import struct

MAGIC = b"MUSEIDX1"
_REC = struct.Struct("<32sBQqqQ")
STORED = 0x80  # flag: the blob is known to be in the object store
MODE_MASK = 0x0F


Entry = tuple[bytes, int, int, int, int, int]
"""(id, flags = mode | STORED, size, mtime_ns, ctime_ns, inode): a plain tuple, because a
status of 25,000 files reads 25,000 of them and attribute-free tuples are the fastest."""
E_OID, E_FLAGS, E_SIZE, E_MTIME, E_CTIME, E_INO = range(6)


def make_entry(oid: bytes, flags: int, st: os.stat_result) -> Entry:
    return (oid, flags, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


class Index:
    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: dict[str, Entry] = {}
        self.base: bytes | None = None
        self.racy_ns = 0  # entries with mtime_ns >= this are not trusted
        self.dirty = False
        self.exists = False

    @classmethod
    def load(cls, path: str) -> Index:
        idx = cls(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except FileNotFoundError:
            return idx
        idx.racy_ns = st.st_mtime_ns
        if len(data) < 76 or data[:8] != MAGIC or hashlib.sha256(data[:-32]).digest() != data[-32:]:
            idx.dirty = True  # corrupt: start afresh (it is only a cache)
            return idx
        idx.exists = True
        base = data[8:40]
        idx.base = None if base == bytes(32) else base
        n = int.from_bytes(data[40:44], "big")
        end = 44 + _REC.size * n
        names = data[end:-32].decode("utf-8", "surrogateescape").split("\0")
        if len(names) != n + 1:
            idx.dirty = True
            return idx
        idx.entries = dict(zip(names, _REC.iter_unpack(data[44:end]), strict=False))  # type: ignore[arg-type]
        return idx

    def save(self) -> None:
        """Write atomically; afterwards entries at least as new as the file count as racy."""
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
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)
        self.dirty = False
        self.exists = True
        try:
            self.racy_ns = os.stat(self.path).st_mtime_ns
        except OSError:
            pass


def load_index(muse_dir: str) -> Index:
    return Index.load(os.path.join(muse_dir, "index"))
