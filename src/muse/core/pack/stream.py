"""A pack of chosen objects, written from any object reader: as chunks or into a file.

What the client's push sends and what the hub's fetch answers are the same thing, a pack
of the objects negotiation chose read from the sender's store; this module writes it for
both. Chunks are about ``chunk`` bytes, so memory holds one chunk, not the pack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from muse.core.pack.codec import PackWriter
from muse.core.pack.gather import in_order
from muse.core.reader import ObjectReader
from muse.errors import MuseError

CHUNK = 1 << 20


class MissingObject(MuseError):
    """An object chosen for a pack is not in the store it is read from (a broken store)."""

    def __init__(self, oid: bytes) -> None:
        super().__init__(f"object {oid.hex()} is missing (run 'muse fsck')")
        self.oid = oid


class _Chunks:
    """A write-only file that hands its bytes out in chunks."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, b: bytes | bytearray | memoryview) -> int:
        self.parts.append(bytes(b))
        self.size += len(b)
        return len(b)

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return out


def _add_all(
    writer: PackWriter,
    reader: ObjectReader,
    objects: Iterable[tuple[int, bytes]],
    on_object: Callable[[], object] | None,
    after_each: Callable[[], Iterator[bytes]] | None = None,
) -> Iterator[bytes]:
    for kind, oid, body in in_order(reader, list(objects)):
        if body is None:
            raise MissingObject(oid)
        writer.add(kind, body, oid)
        if on_object is not None:
            on_object()
        if after_each is not None:
            yield from after_each()


def pack_chunks(
    reader: ObjectReader,
    objects: Iterable[tuple[int, bytes]],
    on_object: Callable[[], object] | None = None,
    chunk: int = CHUNK,
) -> Iterator[bytes]:
    """The pack of ``objects`` ((kind, oid), in the order given), chunk by chunk."""
    sink = _Chunks()
    writer = PackWriter(sink)

    def full() -> Iterator[bytes]:
        if sink.size >= chunk:
            yield sink.take()

    yield from _add_all(writer, reader, objects, on_object, full)
    writer.finish()
    if sink.size:
        yield sink.take()


def write_pack_of(
    out: BinaryIO,
    reader: ObjectReader,
    objects: Iterable[tuple[int, bytes]],
    on_object: Callable[[], object] | None = None,
) -> int:
    """Write the pack of ``objects`` to ``out``; returns its size in bytes."""
    return write_pack_file(out, reader, objects, on_object)[0]


def write_pack_file(
    out: BinaryIO,
    reader: ObjectReader,
    objects: Iterable[tuple[int, bytes]],
    on_object: Callable[[], object] | None = None,
) -> tuple[int, bytes]:
    """Write the pack of ``objects`` to ``out``; returns its size and the SHA-256 of all its
    bytes (a presigned upload is bound to it)."""
    writer = PackWriter(out)
    for _ in _add_all(writer, reader, objects, on_object):
        pass
    writer.finish()
    assert writer.file_sha256 is not None
    return writer.bytes_written, writer.file_sha256
