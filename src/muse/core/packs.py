"""Packs at rest: MuseWire packs stored as received, plus an index from id to position.

A pack in ``.muse/packs`` (or the hub's cache) is byte for byte the pack that travelled, so
receiving one is a single pass: the bytes are written to a temporary file while they are
decoded and every object re-hashed, and the file is renamed into place with its index only
when everything verified. The index (``pack-<checksum>.idx`` beside ``pack-<checksum>.pack``)::

    "MUSEIDX1" | count u32 | pack checksum (32 bytes)
    fanout: 256 x u32, number of ids whose first byte is <= i
    ids: count x 32 bytes, sorted
    entries: count x (block offset u64 | record offset in the block's data u32 |
                      body length u32 | kind u8 | block codec u8), in id order
    SHA-256 of all the preceding bytes

A raw block's object is read with one ``pread``; a zstd block is decompressed whole and kept
in a process-wide cache bounded in bytes. Packs keep trees of the same path next to each
other (see :func:`layout_for_pack`) and readers walk them in that order, so each block is
usually decompressed once; whole-pack passes use :meth:`PackFile.iter_objects`.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO

from muse.core.objects import COMMIT, MODE_TREE, TREE, commit_refs, object_id
from muse.wire.pack import (
    BLOCK_HEADER,
    BLOCK_HEADER_LEN,
    CODEC_RAW,
    CODEC_ZSTD,
    RECORD_HEADER_LEN,
    BlockReader,
    PackError,
    PackLimits,
    PackWriter,
    decompress_block,
    iter_records,
)

IDX_MAGIC = b"MUSEIDX1"
_IDX_HEAD = struct.Struct(">8sI32s")
_ENTRY = struct.Struct(">QIIBB")
_ENTRY_LEN = _ENTRY.size  # 18
_FANOUT = struct.Struct(">256I")
_TMP_PREFIX = ".tmp-pack-"
#: Bytes of decompressed zstd blocks kept for all PackFiles of the process together. Enough
#: for every tree of an XL history in any access order; a cap, not a reservation.
BLOCK_CACHE_BYTES = 96 << 20


class _BlockCache:
    """A process-wide LRU of decompressed blocks, bounded in bytes (thread-safe)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._d: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> bytes | None:
        with self._lock:
            data = self._d.get(key)
            if data is not None:
                self._d.move_to_end(key)
            return data

    def put(self, key: tuple[int, int], data: bytes) -> None:
        with self._lock:
            if key in self._d:
                return
            self._d[key] = data
            self.size += len(data)
            while self.size > min(self.budget, BLOCK_CACHE_BYTES) and len(self._d) > 1:
                _, old = self._d.popitem(last=False)
                self.size -= len(old)

    def drop(self, owner: int) -> None:
        with self._lock:
            for key in [k for k in self._d if k[0] == owner]:
                self.size -= len(self._d.pop(key))


_CACHE = _BlockCache(BLOCK_CACHE_BYTES)
_OWNER = itertools.count(1)
#: After this many lookups a PackFile builds a dict instead of binary searching.
_DICT_AFTER = 512

#: An index entry while a pack is written: oid + _ENTRY bytes (50 bytes, sorts by id, then
#: by position, so the first occurrence of a duplicate comes first). Compact because a 1 GB
#: pack of small files has a quarter of a million of them.
Entry = bytes


def _entry(oid: bytes, kind: int, block_off: int, rec_off: int, length: int, codec: int) -> bytes:
    return oid + _ENTRY.pack(block_off, rec_off, length, kind, codec)


def _idx_path(pack_path: str) -> str:
    return os.path.splitext(pack_path)[0] + ".idx"


def _encode_index(checksum: bytes, entries: list[Entry]) -> bytes:
    """The index bytes for a pack's entries (duplicates keep the first occurrence)."""
    entries.sort()
    uniq: list[Entry] = []
    last = b""
    for e in entries:
        oid = e[:32]
        if oid != last:
            uniq.append(e)
            last = oid
    fan = [0] * 256
    for e in uniq:
        fan[e[0]] += 1
    total = 0
    for i in range(256):
        total += fan[i]
        fan[i] = total
    parts = [
        _IDX_HEAD.pack(IDX_MAGIC, len(uniq), checksum),
        _FANOUT.pack(*fan),
        b"".join([e[:32] for e in uniq]),
        b"".join([e[32:] for e in uniq]),
    ]
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


class _Ids(Sequence[bytes]):
    """The sorted id section of an index as a sequence, for bisect without copying."""

    def __init__(self, ids: bytes) -> None:
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids) // 32

    def __getitem__(self, i: Any) -> Any:
        return self._ids[32 * i : 32 * i + 32]


class PackFile:
    """One pack at rest and its index: random access by id, and sequential iteration."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.idx_path = _idx_path(path)
        with open(self.idx_path, "rb") as f:
            raw = f.read()
        head_len = _IDX_HEAD.size + _FANOUT.size
        if len(raw) < head_len + 32 or hashlib.sha256(raw[:-32]).digest() != raw[-32:]:
            raise PackError("bad_pack", f"corrupt pack index {self.idx_path}")
        magic, count, checksum = _IDX_HEAD.unpack_from(raw, 0)
        if magic != IDX_MAGIC or len(raw) != head_len + count * (32 + _ENTRY_LEN) + 32:
            raise PackError("bad_pack", f"corrupt pack index {self.idx_path}")
        self.count: int = count
        self.checksum: bytes = checksum
        self._fanout = _FANOUT.unpack_from(raw, _IDX_HEAD.size)
        ids_at = head_len
        ent_at = ids_at + 32 * count
        self._ids = raw[ids_at:ent_at]
        self._entries = raw[ent_at : ent_at + _ENTRY_LEN * count]
        self._seq = _Ids(self._ids)
        self._dict: dict[bytes, int] | None = None
        self._lookups = 0
        self._fd: int | None = None
        self._owner = next(_OWNER)  # this PackFile's key in the block cache
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PackFile({self.path!r}, count={self.count})"

    # ---------------------------------------------------------------------------- lookup
    def _find(self, oid: bytes) -> int:
        d = self._dict
        if d is not None:
            return d.get(oid, -1)
        if len(oid) != 32:
            return -1
        self._lookups += 1
        if self._lookups > _DICT_AFTER:
            ids = self._ids
            self._dict = d = {ids[i : i + 32]: i // 32 for i in range(0, len(ids), 32)}
            return d.get(oid, -1)
        b0 = oid[0]
        lo = self._fanout[b0 - 1] if b0 else 0
        hi = self._fanout[b0]
        if lo == hi:
            return -1
        i = bisect.bisect_left(self._seq, oid, lo, hi)
        if i < hi and self._ids[32 * i : 32 * i + 32] == oid:
            return i
        return -1

    def _entry(self, i: int) -> tuple[int, int, int, int, int]:
        return _ENTRY.unpack_from(self._entries, _ENTRY_LEN * i)  # type: ignore[return-value]

    def has(self, oid: bytes) -> bool:
        return self._find(oid) >= 0

    def __contains__(self, oid: object) -> bool:
        return isinstance(oid, bytes) and self._find(oid) >= 0

    def kind(self, oid: bytes) -> int | None:
        i = self._find(oid)
        return None if i < 0 else self._entry(i)[3]

    def size(self, oid: bytes) -> int | None:
        """The body length of an object, from the index alone."""
        i = self._find(oid)
        return None if i < 0 else self._entry(i)[2]

    def get(self, oid: bytes) -> tuple[int, bytes] | None:
        """(kind, body) of an object in this pack, or None."""
        i = self._find(oid)
        if i < 0:
            return None
        block_off, rec_off, length, kind, codec = self._entry(i)
        start = rec_off + RECORD_HEADER_LEN
        if codec == CODEC_RAW:
            body = self._pread(length, block_off + BLOCK_HEADER_LEN + start)
            if len(body) != length:
                raise PackError("bad_pack", f"pack {self.path} is truncated")
            return kind, body
        return kind, self._block(block_off)[start : start + length]

    # ------------------------------------------------------------------------------ bytes
    def _pread(self, n: int, offset: int) -> bytes:
        fd = self._fd
        if fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY)
                fd = self._fd
        return os.pread(fd, n, offset)

    def _block(self, block_off: int) -> bytes:
        """The decompressed data of the zstd block at ``block_off`` (cached process-wide)."""
        key = (self._owner, block_off)
        data = _CACHE.get(key)
        if data is None:
            data = self._read_block(block_off)[1]
            _CACHE.put(key, data)
        return data

    def _read_block(self, block_off: int) -> tuple[int, bytes]:
        head = self._pread(BLOCK_HEADER_LEN, block_off)
        if len(head) != BLOCK_HEADER_LEN:
            raise PackError("bad_pack", f"pack {self.path} is truncated")
        codec, _count, ulen, clen = BLOCK_HEADER.unpack(head)
        payload = self._pread(clen, block_off + BLOCK_HEADER_LEN)
        if len(payload) != clen:
            raise PackError("bad_pack", f"pack {self.path} is truncated")
        if codec == CODEC_ZSTD:
            return codec, decompress_block(payload, ulen)
        return codec, payload

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        _CACHE.drop(self._owner)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    # -------------------------------------------------------------------------- iterate
    def ids(self) -> Iterator[bytes]:
        """Every id, sorted."""
        ids = self._ids
        return (ids[i : i + 32] for i in range(0, len(ids), 32))

    def kinds(self) -> Iterator[tuple[bytes, int]]:
        """(id, kind) of every object, sorted by id."""
        ids, ents = self._ids, self._entries
        for i in range(self.count):
            yield ids[32 * i : 32 * i + 32], ents[_ENTRY_LEN * i + _ENTRY_LEN - 2]

    def ids_by_kind(self) -> dict[int, set[bytes]]:
        """{kind: set of ids} of the whole pack, from the index alone."""
        out: dict[int, set[bytes]] = {}
        ids, kinds = self._ids, self._entries[_ENTRY_LEN - 2 :: _ENTRY_LEN]
        for k in set(kinds):
            out[k] = set()
        for i, k in enumerate(kinds):
            out[k].add(ids[32 * i : 32 * i + 32])
        return out

    def count_kind(self, kind: int) -> int:
        """How many objects of this kind the pack holds (from the index, in C)."""
        return self._entries[_ENTRY_LEN - 2 :: _ENTRY_LEN].count(kind)

    def kind_map(self) -> dict[bytes, int]:
        """{id: kind} for the whole pack (what the connectivity check wants)."""
        return dict(self.kinds())

    def iter_objects(
        self, kinds: Iterable[int] | None = None
    ) -> Iterator[tuple[int, bytes, bytes]]:
        """(kind, oid, body) in pack order, each block read once; optionally only some kinds.

        Cheap whole-pack passes (the hub's connectivity check, fsck): asking only for trees
        and commits never reads the blob blocks at all. Objects are not re-hashed (see
        :meth:`verify`).
        """
        ids, ents = self._ids, self._entries
        unpack = _ENTRY.unpack_from
        chosen: Iterable[int] = range(self.count)
        if kinds is not None:
            want = frozenset(kinds)
            chosen = [i for i, k in enumerate(ents[_ENTRY_LEN - 2 :: _ENTRY_LEN]) if k in want]
        order = []
        for i in chosen:
            block_off, rec_off, length, kind, _codec = unpack(ents, _ENTRY_LEN * i)
            order.append((block_off, rec_off, length, kind, i))
        order.sort()
        cur_off = -1
        data = b""
        for block_off, rec_off, length, kind, i in order:
            if block_off != cur_off:
                cached = _CACHE.get((self._owner, block_off))
                data = cached if cached is not None else self._read_block(block_off)[1]
                cur_off = block_off
            start = rec_off + RECORD_HEADER_LEN
            yield kind, ids[32 * i : 32 * i + 32], data[start : start + length]

    def verify(self, limits: PackLimits | None = None) -> int:
        """Re-read the whole pack: every id re-hashed, the checksum, and the index agreeing.

        Returns the object count; raises PackError on any disagreement (fsck).
        """
        seen = 0
        with open(self.path, "rb") as f:
            reader = BlockReader(f, limits, stream_large=True)
            for block in reader:
                records: Iterable[tuple[int, bytes, Any, int]]
                if block.record is not None:
                    records = [(block.record[0], block.record[1], None, 0)]
                else:
                    records = iter_records(block, limits)
                for _kind, oid, _body, rec in records:
                    i = self._find(oid)
                    if i < 0:
                        raise PackError("bad_pack", f"{oid.hex()} is missing from the index")
                    e = self._entry(i)
                    if e[0] != block.offset or e[1] != rec:
                        # A duplicate later in the pack is fine; the index points at the first.
                        continue
                    seen += 1
        if reader.checksum != self.checksum or seen != self.count:
            raise PackError("bad_pack", f"index {self.idx_path} does not match its pack")
        return seen


# ---------------------------------------------------------------------------------- writing


def _finish(dest_dir: str, tmp_pack: str, checksum: bytes, entries: list[Entry]) -> PackFile:
    """Write the index and rename both files into place (the index last: it makes it visible)."""
    name = os.path.join(dest_dir, f"pack-{checksum.hex()}")
    final_pack, final_idx = name + ".pack", name + ".idx"
    if os.path.exists(final_pack) and os.path.exists(final_idx):
        os.unlink(tmp_pack)
        return PackFile(final_pack)
    fd, tmp_idx = _mkstemp(dest_dir, ".idx")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_encode_index(checksum, entries))
        os.chmod(tmp_pack, 0o444)
        os.chmod(tmp_idx, 0o444)
        os.replace(tmp_pack, final_pack)
        os.replace(tmp_idx, final_idx)
    except BaseException:
        _unlink(tmp_idx)
        raise
    return PackFile(final_pack)


def _mkstemp(dest_dir: str, suffix: str) -> tuple[int, str]:
    import tempfile  # only when writing: reading commands do not pay for importing it

    return tempfile.mkstemp(dir=dest_dir, prefix=_TMP_PREFIX, suffix=suffix)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def receive_pack(
    stream: BinaryIO,
    dest_dir: str,
    limits: PackLimits | None = None,
    inspect: Callable[[int, bytes, memoryview], Any] | None = None,
    inspect_kinds: Iterable[int] = (TREE, COMMIT),
) -> PackFile:
    """Store a pack arriving on ``stream`` in ``dest_dir``, verifying it in the same pass.

    Every byte read is written to a temporary file while blocks are decoded and every object
    re-hashed; only when the trailer checksum matched are the pack and its index renamed to
    ``pack-<checksum hex>.pack/.idx``. On any failure (PackError, or the stream's own error)
    nothing is left behind.

    ``inspect(kind, oid, body)`` is called for every object of ``inspect_kinds`` right after
    its id was re-hashed (``body`` is a view valid only during the call), so a receiver can
    check structure and collect references in the same pass instead of re-reading the pack;
    what it raises aborts the receive. Nothing it saw may be trusted before this returns.
    """
    want = frozenset(inspect_kinds) if inspect is not None else frozenset()
    fd, tmp = _mkstemp(dest_dir, ".pack")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            checksum, entries = _read_entries(stream, limits, f.write, inspect, want)
        return _finish(dest_dir, tmp, checksum, entries)
    except BaseException:
        _unlink(tmp)
        raise


def receive_pack_file(
    path: str,
    dest_dir: str,
    limits: PackLimits | None = None,
    inspect: Callable[[int, bytes, memoryview], Any] | None = None,
    inspect_kinds: Iterable[int] = (TREE, COMMIT),
) -> PackFile | None:
    """:func:`receive_pack` for a pack that is already a local file nobody writes in place.

    The file is hard-linked into ``dest_dir`` and the link verified exactly as a received
    stream (so what is verified is what is kept), without copying its bytes. None when it
    cannot be linked (another file system): then receive it as a stream.
    """
    want = frozenset(inspect_kinds) if inspect is not None else frozenset()
    fd, tmp = _mkstemp(dest_dir, ".pack")
    os.close(fd)
    os.unlink(tmp)
    try:
        os.link(path, tmp)
    except OSError:
        return None
    try:
        with open(tmp, "rb", buffering=0) as f:
            checksum, entries = _read_entries(f, limits, None, inspect, want)
        return _finish(dest_dir, tmp, checksum, entries)
    except BaseException:
        _unlink(tmp)
        raise


def _read_entries(
    stream: BinaryIO,
    limits: PackLimits | None,
    tee: Callable[[bytes | bytearray], Any] | None,
    inspect: Callable[[int, bytes, memoryview], Any] | None,
    want: frozenset[int],
) -> tuple[bytes, list[Entry]]:
    """Decode and verify a whole pack: (checksum, index entries)."""
    reader = BlockReader(stream, limits, tee=tee, stream_large=True)
    entries: list[Entry] = []
    append = entries.append
    for block in reader:
        off, codec = block.offset, block.codec
        if block.record is not None:  # a big file, verified piece by piece
            kind, oid, length = block.record
            append(_entry(oid, kind, off, 0, length, codec))
            continue
        for kind, oid, body, rec in iter_records(block, limits):
            append(_entry(oid, kind, off, rec, len(body), codec))
            if kind in want:
                inspect(kind, oid, body)  # type: ignore[misc]
    assert reader.checksum is not None
    return reader.checksum, entries


def write_pack_file(
    dest_dir: str, objects: Iterable[tuple[int, bytes]], compress: bool = True
) -> PackFile:
    """Write objects as one pack (with its index) into ``dest_dir``.

    A list or tuple is first laid out by :func:`layout_for_pack` (trees grouped by path),
    which is what makes a locally built history's trees compress; any other iterable is
    streamed in the order given.
    """
    if isinstance(objects, list | tuple):
        items: Iterable[tuple[int, bytes, bytes | None]] = layout_for_pack(objects)
    else:
        items = ((k, b, None) for k, b in objects)
    entries: list[Entry] = []

    def on_block(offset: int, codec: int, recs: list[tuple[int, bytes, int, int]]) -> None:
        entries.extend(
            _entry(oid, kind, offset, rec, length, codec) for kind, oid, rec, length in recs
        )

    fd, tmp = _mkstemp(dest_dir, ".pack")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            w = PackWriter(f, compress=compress, on_block=on_block)
            for kind, body, oid in items:
                w.add(kind, body, oid)
            checksum = w.finish()
        return _finish(dest_dir, tmp, checksum, entries)
    except BaseException:
        _unlink(tmp)
        raise


def layout_for_pack(
    objects: Sequence[tuple[int, bytes]],
) -> list[tuple[int, bytes, bytes | None]]:
    """Order objects for a pack: commits, then trees grouped by path, then blobs.

    Paths are found by walking the commits given (newest, i.e. last, first) into the trees
    given; within a path trees keep that newest-first order. Consecutive versions of a
    directory then sit side by side, where zstd turns them into a few bytes each (68 MB of
    trees at XL pack to 1.85 MB grouped, 10.7 MB in commit order), and a reader walking history
    path by path touches each block once. Returns (kind, body, oid or None) items.
    """
    commits: list[tuple[int, bytes, bytes | None]] = []
    blobs: list[tuple[int, bytes, bytes | None]] = []
    trees: dict[bytes, bytes] = {}
    roots: list[bytes] = []
    for kind, body in objects:
        if kind == TREE:
            trees.setdefault(object_id(TREE, body), body)
        elif kind == COMMIT:
            commits.append((kind, body, None))
        else:
            blobs.append((kind, body, None))
    for _, body, _ in reversed(commits):
        try:
            roots.append(commit_refs(body)[0])
        except ValueError:
            continue
    placed: dict[bytes, tuple[bytes, int]] = {}  # tree id -> (path, rank)
    queue: list[tuple[bytes, bytes]] = [(r, b"") for r in roots if r in trees]
    rank = 0
    while queue:
        nxt: list[tuple[bytes, bytes]] = []
        for tid, path in queue:
            if tid in placed:
                continue
            placed[tid] = (path, rank)
            rank += 1
            body = trees[tid]
            n = int.from_bytes(body[:4], "big") if len(body) >= 4 else 0
            modes = body[4 : 4 + n]
            if bytes([MODE_TREE]) not in modes:
                continue
            names = body[4 + 33 * n :].split(b"\0")
            for i, m in enumerate(modes):
                if m == MODE_TREE and i < len(names):
                    sub = body[4 + n + 32 * i : 4 + n + 32 * i + 32]
                    if sub in trees and sub not in placed:
                        nxt.append((sub, path + b"/" + names[i]))
        queue = nxt
    far = (b"\xff" * 8, 0)
    order = sorted(trees, key=lambda t: placed.get(t, far))
    laid: list[tuple[int, bytes, bytes | None]] = commits
    laid.extend((TREE, trees[t], t) for t in order)
    laid.extend(blobs)
    return laid


# ------------------------------------------------------------------------------------ sets


class PackSet:
    """Every ``*.pack`` (with its index) in one directory, behind one read interface."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.packs: list[PackFile] = []
        self._by_name: dict[str, PackFile] = {}
        self.refresh()

    def refresh(self) -> None:
        """Pick up packs added since (newest first, so recent objects are found fastest)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            names = []
        found: list[tuple[float, str]] = []
        for n in names:
            if n.endswith(".pack") and not n.startswith("."):
                p = os.path.join(self.directory, n)
                if os.path.exists(_idx_path(p)):
                    try:
                        found.append((os.stat(p).st_mtime, n))
                    except FileNotFoundError:
                        continue
        found.sort(reverse=True)
        by_name: dict[str, PackFile] = {}
        for _, n in found:
            pf = self._by_name.get(n)
            if pf is None:
                try:
                    pf = PackFile(os.path.join(self.directory, n))
                except (OSError, PackError):
                    continue
            by_name[n] = pf
        self._by_name = by_name
        self.packs = list(by_name.values())

    def get(self, oid: bytes) -> tuple[int, bytes] | None:
        for pf in self.packs:
            found = pf.get(oid)
            if found is not None:
                return found
        return None

    def has(self, oid: bytes) -> bool:
        return any(pf.has(oid) for pf in self.packs)

    def kind(self, oid: bytes) -> int | None:
        for pf in self.packs:
            k = pf.kind(oid)
            if k is not None:
                return k
        return None

    def size(self, oid: bytes) -> int | None:
        for pf in self.packs:
            n = pf.size(oid)
            if n is not None:
                return n
        return None

    def ids(self) -> Iterator[bytes]:
        seen: set[bytes] = set()
        for pf in self.packs:
            for oid in pf.ids():
                if oid not in seen:
                    seen.add(oid)
                    yield oid

    def __len__(self) -> int:
        return len(self.packs)


__all__ = [
    "PackFile",
    "PackSet",
    "layout_for_pack",
    "receive_pack",
    "write_pack_file",
]
