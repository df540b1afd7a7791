"""Large files as content-defined chunks: cutting, hashing and restoring them, in flat memory.

A regular file of CHUNKED_MIN (1 MiB) or more is stored as a CHUNKS object listing its
chunks, each an ordinary blob (docs/format.md §1.4). Boundaries come from FastCDC 2020
(normalised chunking level 1, the gear table of the paper's reference code, as in
fastcdc-rs): 16 KiB minimum, 64 KiB target, 256 KiB maximum. Because a boundary depends only
on the bytes just before it, an edit moves at most the boundaries next to it: a changed byte,
an insertion or an append costs a few new chunks, not a new file, and a copy of a file costs
nothing at all. The cutter is pyfastcdc (Cython, ~2 GB/s here, the GIL released while it
cuts; the pure-Python ``fastcdc`` package ran at 1.6 GB/s and pulls in click and humanize).

Nothing here holds more than the chunker's buffer (2 x 256 KiB) of a file in memory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from muse.core import heap
from muse.core.fileio import write_all
from muse.core.objects import (
    BLOB,
    CHUNK_MAX,
    CHUNKS,
    ObjectFormatError,
    decode_chunks,
    encode_chunks,
    object_id,
)

CHUNK_MIN = 16 << 10
CHUNK_AVG = 64 << 10

_cdc: Any = None


def _chunker() -> Any:
    """The FastCDC instance (imported on first use: commands without big files never pay)."""
    global _cdc
    if _cdc is None:
        import pyfastcdc

        heap.tune_once()  # a large file: its chunks and blocks are large buffers

        _cdc = pyfastcdc.FastCDC(
            CHUNK_AVG, min_size=CHUNK_MIN, max_size=CHUNK_MAX, normalized_chunking=1
        )
    return _cdc


class _Reader:
    """``readinto`` over a file descriptor (the chunker reads until it gets 0)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def readinto(self, buf: Any) -> int:
        return os.readv(self.fd, [buf])


def cut(fd: int) -> Iterator[tuple[bytes, memoryview]]:
    """(blob id, chunk bytes) of the file open on ``fd``, from its current offset to its end.

    The view is valid only until the next item (copy it to keep it).
    """
    sha256 = hashlib.sha256
    for ch in _chunker().cut_stream(_Reader(fd)):
        data = ch.data
        h = sha256(b"blob %d\0" % len(data))
        h.update(data)
        yield h.digest(), data


def cut_bytes(data: bytes | memoryview) -> Iterator[tuple[bytes, memoryview]]:
    """:func:`cut` for content already in memory (fast-import, tests)."""
    view = memoryview(data)
    for ch in _chunker().cut_buf(view):
        piece = view[ch.offset : ch.offset + ch.length]
        yield object_id(BLOB, piece), piece


def chunk_list(
    chunks: Iterator[tuple[bytes, memoryview]],
    keep: Callable[[bytes, memoryview], Any] | None = None,
) -> bytes:
    """The CHUNKS body of a chunk stream; ``keep(oid, data)`` sees every chunk (to store it)."""
    ids: list[bytes] = []
    lengths: list[int] = []
    for oid, data in chunks:
        ids.append(oid)
        lengths.append(len(data))
        if keep is not None:
            keep(oid, data)
    return encode_chunks(ids, lengths)


def file_chunks(
    path: str, keep: Callable[[bytes, memoryview], Any] | None = None
) -> tuple[bytes, bytes, int]:
    """(CHUNKS id, CHUNKS body, size read) of the file at ``path``, never opened through a
    symlink. A file that shrank below CHUNKED_MIN while being read raises ObjectFormatError
    (the caller hashes it again as a small file)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        body = chunk_list(cut(fd), keep)
    finally:
        os.close(fd)
    return object_id(CHUNKS, body), body, int.from_bytes(body[:8], "big")


def chunk_ids(body: bytes | memoryview) -> list[bytes]:
    """The blob ids a CHUNKS body lists, in file order (with repeats)."""
    _size, ids, _lengths = decode_chunks(body)
    return [ids[i : i + 32] for i in range(0, len(ids), 32)]


def restore(
    fd: int,
    body: bytes | memoryview,
    read_blob: Callable[[bytes], tuple[int, bytes] | None],
    on_bytes: Callable[[int], Any] | None = None,
) -> int:
    """Write the file a CHUNKS body describes to ``fd``, chunk by chunk; returns its size.

    Every chunk must be a blob of the listed length (they were verified by id when stored);
    anything else raises ObjectFormatError naming the chunk.
    """
    heap.tune_once()
    size, ids, lengths = decode_chunks(body)
    for i, length in enumerate(lengths):
        oid = ids[32 * i : 32 * i + 32]
        found = read_blob(oid)
        if found is None or found[0] != BLOB or len(found[1]) != length:
            raise ObjectFormatError(f"chunk {oid.hex()[:12]} is missing or not {length} bytes")
        write_all(fd, found[1])
        if on_bytes is not None:
            on_bytes(length)
    return size
