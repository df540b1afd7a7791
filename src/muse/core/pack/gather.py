"""Reading many objects in an order that is not the packs' own, each zstd block about once.

A pack written for the wire lays objects out as negotiation lists them (commits, trees grouped
by path, blobs by path), and a pack received keeps that layout, so a sender walking the same
order reads its blocks one after another. A pack laid out otherwise (``muse fast-import``
writes the stream's order: every version of a file lies in another block) is read in a jumble:
pushing pallets/flask's history decompressed its 44 blocks of 4 MiB 414 times (0.9 s of a
2.2 s push), the block cache (96 MiB) holding about half of them.

:func:`in_order` reads directly while the block cache says blocks are decompressed once; when
it starts decompressing blocks it had evicted (``BlockCache.refills``), it plans the rest from
the index alone and, if the rest is a jumble over more blocks than the cache holds, reads it in
pack order, each block once, into a temporary spool file of plain bodies, and hands the bodies
out in the requested order from there: memory stays at about one block, the cost is one
sequential write and read of the bodies (flask: push 2.2 s -> 1.5 s). A sequential reader pays
nothing but a counter.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from muse.core.fileio import pread_exact, write_all
from muse.core.pack.codec import ZSTD_BLOCK_TARGET

#: Spool only when the order would decompress at least this many blocks again.
MIN_WASTED_BLOCKS = 8
#: Bodies go to the spool in writes of about this size.
SPOOL_WRITE = 1 << 20

Placed = list[tuple[Any, int, int]]  # (pack, block offset, index into the objects)


def _cache(reader: Any) -> Any:
    return getattr(reader, "block_cache", None)


def plan(reader: Any, objects: Sequence[tuple[int, bytes]]) -> Placed | None:
    """Where each object held in a zstd block lies (pack, block offset, index in ``objects``),
    when reading in the given order would decompress blocks many times over; else None."""
    locate = getattr(reader, "locate", None)
    if not callable(locate) or len(objects) < 2:
        return None
    where: Placed = []
    blocks: set[tuple[int, int]] = set()
    switches = 0
    last: tuple[int, int] | None = None
    for i, (_kind, oid) in enumerate(objects):
        loc = locate(oid)
        if loc is None or loc[1] < 0:  # loose, or a raw record: one read whatever the order
            continue
        pack, block = loc
        key = (id(pack), block)
        if key != last:
            switches += 1
            last = key
        blocks.add(key)
        where.append((pack, block, i))
    cache = _cache(reader)
    held = max(1, int(getattr(cache, "budget", 0)) // ZSTD_BLOCK_TARGET)
    if len(blocks) <= held or switches - len(blocks) < MIN_WASTED_BLOCKS:
        return None
    return where


def in_order(
    reader: Any,
    objects: Sequence[tuple[int, bytes]],
    spool_dir: str | None = None,
) -> Iterator[tuple[int, bytes, bytes | None]]:
    """(kind, oid, body) of each of ``objects`` in the order given; body None if missing."""
    cache = _cache(reader)
    allowed = cache.refills + MIN_WASTED_BLOCKS if cache is not None else None
    for i, (kind, oid) in enumerate(objects):
        if allowed is not None and cache.refills > allowed:
            rest = objects[i:]
            where = plan(reader, rest)
            if where is not None:
                yield from _spooled(reader, rest, where, spool_dir)
                return
            allowed = cache.refills + 4 * MIN_WASTED_BLOCKS  # not worth it: look less often
        found = reader.get(oid)
        yield (kind, oid, None) if found is None else (found[0], oid, found[1])


def _spooled(
    reader: Any, objects: Sequence[tuple[int, bytes]], where: Placed, spool_dir: str | None
) -> Iterator[tuple[int, bytes, bytes | None]]:
    order = {id(p): n for n, p in enumerate(dict.fromkeys(p for p, _, _ in where))}
    where.sort(key=lambda w: (order[id(w[0])], w[1]))
    spooled: dict[int, tuple[int, int, int]] = {}  # index -> (kind, offset, length)
    fd, path = tempfile.mkstemp(prefix="gather-", dir=spool_dir)
    try:
        os.unlink(path)  # the spool lives as long as the descriptor
        offset = 0
        buf = bytearray()
        for pack, _block, i in where:
            found = pack.get(objects[i][1])
            if found is None:
                continue
            kind, body = found
            buf += body
            spooled[i] = (kind, offset, len(body))
            offset += len(body)
            if len(buf) >= SPOOL_WRITE:
                write_all(fd, buf)
                buf.clear()
        write_all(fd, buf)
        del buf
        for i, (kind, oid) in enumerate(objects):
            s = spooled.get(i)
            if s is not None:
                yield s[0], oid, pread_exact(fd, s[2], s[1])
            else:
                found = reader.get(oid)
                yield (kind, oid, None) if found is None else (found[0], oid, found[1])
    finally:
        os.close(fd)
