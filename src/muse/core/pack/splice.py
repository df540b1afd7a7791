"""A pack made of whole blocks of packs at rest, copied byte for byte.

A large file's chunks lie in the blocks its commit wrote (raw blocks of about
``BLOCK_TARGET`` for incompressible audio). Pushing them used to decode every chunk,
re-encode the same blocks into a temporary pack file and read that file back to send it;
``perf`` over a 1 GiB presigned push showed the writes of that temporary file alone taking
more CPU than the hub's whole receive (docs/benchmarks.md, 2026-12-07 night). A pack whose
blocks are all whole blocks of local packs needs none of that: its bytes are the pack header,
the blocks as they lie on disk, and a trailer whose checksum is computed as the bytes go by
(docs/wire.md §1.1: a block is self-contained, so any sequence of valid blocks is a valid
pack body).

A block is taken only when every record in it is wanted, so a spliced pack never carries an
object nobody asked for; :func:`whole_blocks` hands the rest back to be packed as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Sequence

from muse.core import heap
from muse.core.pack.codec import END_TAG, HEADER, HEADER_LEN, TRAILER_LEN, PackError
from muse.core.pack.file import PackFile
from muse.core.pack.packset import PackList
from muse.core.record import Frozen

#: Bytes read (and handed out) at a time.
PIECE = 1 << 20


class Span(Frozen):
    """One whole block of a pack at rest: where it lies and how many records it holds."""

    __slots__ = ("pack", "offset", "length", "count", "objects")

    pack: PackFile
    offset: int
    length: int  # block header included
    count: int
    objects: tuple[tuple[int, bytes], ...]  # (kind, id) of its records, as listed

    def __init__(
        self,
        pack: PackFile,
        offset: int,
        length: int,
        count: int,
        objects: tuple[tuple[int, bytes], ...],
    ) -> None:
        _set = object.__setattr__
        _set(self, "pack", pack)
        _set(self, "offset", offset)
        _set(self, "length", length)
        _set(self, "count", count)
        _set(self, "objects", objects)


def whole_blocks(
    packs: PackList | None, objects: Sequence[tuple[int, bytes]]
) -> tuple[list[Span], list[tuple[int, bytes]]]:
    """Split ``objects`` into the whole blocks of ``packs`` that hold exactly some of them (in
    the order their first object is listed) and the objects left over (loose ones, and those
    sharing a block with objects not listed)."""
    groups: dict[tuple[PackFile, int], list[tuple[int, bytes]]] = {}
    rest: list[tuple[int, bytes]] = []
    for item in objects:
        pf = packs.pack_of(item[1]) if packs is not None else None
        off = pf.block_offset(item[1]) if pf is not None else None
        if pf is None or off is None:
            rest.append(item)
        else:
            groups.setdefault((pf, off), []).append(item)
    spans: list[Span] = []
    for (pf, off), group in groups.items():
        count, length = pf.block_extent(off)
        if count == len(group) == len({oid for _, oid in group}):
            spans.append(Span(pf, off, length, count, tuple(group)))
        else:
            rest.extend(group)
    return spans, rest


class SplicedPack:
    """The pack of some whole blocks: its size and object count known up front, its bytes
    produced on demand (each call of :meth:`chunks` starts again: a retried upload)."""

    def __init__(self, spans: Sequence[Span]) -> None:
        self.spans = list(spans)
        self.count = sum(s.count for s in self.spans)
        self.size = HEADER_LEN + sum(s.length for s in self.spans) + TRAILER_LEN
        #: SHA-256 of all the pack's bytes, known once :meth:`chunks` ran to its end.
        self.file_sha256: bytes | None = None

    def chunks(self) -> Generator[bytes, None, None]:
        """The pack's bytes, about :data:`PIECE` at a time, its checksum computed on the way."""
        heap.tune_once()
        h = hashlib.sha256(HEADER)
        yield HEADER
        for span in self.spans:
            done = 0
            while done < span.length:
                n = min(PIECE, span.length - done)
                piece = span.pack.read_at(span.offset + done, n)
                if len(piece) != n:
                    raise PackError("bad_pack", f"pack {span.pack.path} is truncated")
                h.update(piece)
                done += n
                yield piece
        tail = bytes([END_TAG]) + self.count.to_bytes(8, "big")
        h.update(tail)
        checksum = h.digest()
        h.update(checksum)
        self.file_sha256 = h.digest()
        yield tail + checksum

    def digest(self) -> bytes:
        """SHA-256 of the whole pack (one pass over it), for a store that binds an upload to
        it before any byte is sent."""
        if self.file_sha256 is None:
            for _ in self.chunks():
                pass
        assert self.file_sha256 is not None
        return self.file_sha256

    def reader(self, on_bytes: Callable[[int], object] | None = None) -> SplicedReader:
        return SplicedReader(self.chunks(), on_bytes)


class SplicedReader:
    """A spliced pack as a file to ``read`` (a request body with a Content-Length)."""

    def __init__(
        self, chunks: Generator[bytes, None, None], on_bytes: Callable[[int], object] | None
    ) -> None:
        self._chunks = chunks
        self._left = b""
        self._on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        if not self._left:
            self._left = next(self._chunks, b"")
        if n < 0 or n >= len(self._left):
            out, self._left = self._left, b""
        else:
            out, self._left = self._left[:n], self._left[n:]
        if self._on_bytes is not None:
            self._on_bytes(len(out))
        return out

    def close(self) -> None:
        self._chunks.close()
