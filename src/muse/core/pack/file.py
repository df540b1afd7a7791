"""One pack at rest and its index: random access by id, and passes in pack order.

A raw block's object is read with one ``pread``; a zstd block is decompressed whole and kept
in the caller's :class:`~muse.core.pack.cache.BlockCache`. Packs keep trees of the same path
next to each other (see :func:`muse.core.pack.write.layout_for_pack`) and readers walk them
in that order, so each block is usually decompressed once; whole-pack passes use
:meth:`PackFile.iter_objects`.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from muse.core.fileio import pread_exact
from muse.core.pack import index
from muse.core.pack.cache import BlockCache, next_owner
from muse.core.pack.codec import (
    BLOCK_HEADER,
    BLOCK_HEADER_LEN,
    CODEC_RAW,
    CODEC_ZSTD,
    RECORD_HEADER_LEN,
    BlockReader,
    PackError,
    PackLimits,
    decompress_block,
    iter_records,
)
from muse.core.pack.index import ENTRY, ENTRY_LEN

#: After this many lookups a PackFile builds a dict instead of binary searching.
_DICT_AFTER = 512


class PackFile:
    """One pack at rest and its index: random access by id, and sequential iteration."""

    def __init__(
        self, path: str, cache: BlockCache | None = None, verify_index: bool = True
    ) -> None:
        self.path = path
        self.idx_path = index.idx_path(path)
        with open(self.idx_path, "rb") as f:
            raw = f.read()
        if verify_index:
            index.verify_index(raw, self.idx_path)
        count, checksum, self._fanout, self._ids, self._entries = index.decode_index(
            raw, self.idx_path
        )
        self.count: int = count
        self.checksum: bytes = checksum
        self._seq = index.IdSequence(self._ids)
        self._dict: dict[bytes, int] | None = None
        self._lookups = 0
        self._fd: int | None = None
        self._cache = cache if cache is not None else BlockCache()
        self._owner = next_owner()  # this PackFile's key in a shared cache
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
        return ENTRY.unpack_from(self._entries, ENTRY_LEN * i)  # type: ignore[return-value]

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

    @property
    def block_cache(self) -> BlockCache:
        return self._cache

    def locate(self, oid: bytes) -> tuple[PackFile, int] | None:
        """(this pack, offset of the zstd block holding the object; -1 when it is held raw,
        one pread whatever the order), or None when the pack lacks it; see pack.gather."""
        i = self._find(oid)
        if i < 0:
            return None
        block_off, _rec, _length, _kind, codec = self._entry(i)
        return (self, -1) if codec == CODEC_RAW else (self, block_off)

    def block_offset(self, oid: bytes) -> int | None:
        """Where the block holding the object begins (raw or zstd), or None (pack.splice)."""
        i = self._find(oid)
        return None if i < 0 else self._entry(i)[0]

    def block_extent(self, block_off: int) -> tuple[int, int]:
        """(record count, length in bytes, header included) of the block at ``block_off``."""
        _codec, count, _ulen, clen = self._block_header(block_off)
        return count, BLOCK_HEADER_LEN + clen

    def read_at(self, offset: int, n: int) -> bytes:
        """``n`` bytes of the pack file at ``offset`` (fewer where it ends)."""
        return self._pread(n, offset)

    # ------------------------------------------------------------------------------ bytes
    def _pread(self, n: int, offset: int) -> bytes:
        fd = self._fd
        if fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY)
                fd = self._fd
        return pread_exact(fd, n, offset)

    def _block(self, block_off: int) -> bytes:
        """The decompressed data of the zstd block at ``block_off`` (cached)."""
        key = (self._owner, block_off)
        data = self._cache.get(key)
        if data is None:
            data = self._read_block(block_off)[1]
            self._cache.put(key, data)
        return data

    def _block_header(self, block_off: int) -> tuple[int, int, int, int]:
        """(codec, count, ulen, clen) of the block at ``block_off``."""
        head = self._pread(BLOCK_HEADER_LEN, block_off)
        if len(head) != BLOCK_HEADER_LEN:
            raise PackError("bad_pack", f"pack {self.path} is truncated")
        return BLOCK_HEADER.unpack(head)  # type: ignore[return-value]

    def _read_block(self, block_off: int) -> tuple[int, bytes]:
        codec, _count, ulen, clen = self._block_header(block_off)
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
        self._cache.drop(self._owner)

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
            yield ids[32 * i : 32 * i + 32], ents[ENTRY_LEN * i + ENTRY_LEN - 2]

    def ids_by_kind(self) -> dict[int, set[bytes]]:
        """{kind: set of ids} of the whole pack, from the index alone."""
        out: dict[int, set[bytes]] = {}
        ids, kinds = self._ids, self._entries[ENTRY_LEN - 2 :: ENTRY_LEN]
        for k in set(kinds):
            out[k] = set()
        for i, k in enumerate(kinds):
            out[k].add(ids[32 * i : 32 * i + 32])
        return out

    def count_kind(self, kind: int) -> int:
        """How many objects of this kind the pack holds (from the index, in C)."""
        return self._entries[ENTRY_LEN - 2 :: ENTRY_LEN].count(kind)

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
        unpack = ENTRY.unpack_from
        chosen: Iterable[int] = range(self.count)
        if kinds is not None:
            want = frozenset(kinds)
            chosen = [i for i, k in enumerate(ents[ENTRY_LEN - 2 :: ENTRY_LEN]) if k in want]
        order = []
        for i in chosen:
            block_off, rec_off, length, kind, _codec = unpack(ents, ENTRY_LEN * i)
            order.append((block_off, rec_off, length, kind, i))
        order.sort()
        cur_off = -1
        data = b""
        for block_off, rec_off, length, kind, i in order:
            if block_off != cur_off:
                cached = self._cache.get((self._owner, block_off))
                data = cached if cached is not None else self._read_block(block_off)[1]
                cur_off = block_off
            start = rec_off + RECORD_HEADER_LEN
            yield kind, ids[32 * i : 32 * i + 32], data[start : start + length]

    def verify(self, limits: PackLimits | None = None) -> int:
        """Re-read the whole pack: every id re-hashed, the checksum, and the index agreeing.

        Returns the object count; raises PackError on any disagreement (fsck).
        """
        with open(self.idx_path, "rb") as f:
            index.verify_index(f.read(), self.idx_path)
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
