"""The MuseWire pack: one self-checking, streaming container of objects for both transports.

The same bytes are the HTTP body of the stream path, the bundle of the presign path and a pack
at rest in ``.muse/packs`` (with an index beside it, see :mod:`muse.core.pack.index`). Layout
(all integers big-endian; docs/wire.md §1 has the byte-level specification and test vectors)::

    header   "MUSEPACK" (8 bytes) | version u32 (= 1)
    block*   codec u8 (1 raw, 2 zstd) | count u32 | ulen u32 | clen u32 | clen bytes
             the (decompressed) ulen bytes are `count` records:
             kind u8 | id 32 bytes | length u32 | length bytes of body
    trailer  0x00 | object count u64 | SHA-256 of every preceding byte of the pack

Trees and commits travel in zstd blocks: consecutive versions of a tree differ by a few entries,
so one zstd frame over many of them removes almost all of their weight (68 MB of trees at XL
become ~1.9 MB). Blobs go into blocks of their own that are compressed only when a cheap probe
says it gains, because content is usually already compressed. A reader holds at most one block
(at most 16 MiB, or one object) in memory, re-hashes every object and checks every limit before it
allocates anything, so a hostile pack costs the receiver nothing but the bytes it sent.
"""

from __future__ import annotations

import hashlib
import io
import queue
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, Protocol

from muse.core import heap
from muse.core.objects import BLOB, KIND_NAMES, object_id
from muse.core.record import Frozen
from muse.errors import MuseError

MAGIC = b"MUSEPACK"
VERSION = 1
HEADER = MAGIC + VERSION.to_bytes(4, "big")
HEADER_LEN = len(HEADER)

CODEC_RAW = 1
CODEC_ZSTD = 2
END_TAG = 0

BLOCK_HEADER = struct.Struct(">BIII")  # codec, count, ulen, clen
BLOCK_HEADER_LEN = BLOCK_HEADER.size  # 13
RECORD_HEADER = struct.Struct(">B32sI")  # kind, id, length
RECORD_HEADER_LEN = RECORD_HEADER.size  # 37
TRAILER_LEN = 1 + 8 + 32

#: A writer aims at blocks of this many uncompressed bytes ...
BLOCK_TARGET = 4 << 20
#: ... and lets a zstd block (trees and commits, or blobs that probe compressible) grow to
#: this many: versions of one file sit side by side, and the more of them one frame sees the
#: more it removes (pallets/flask's history: 7.5 MB in blocks of 4 MiB, 5.96 MB in blocks of
#: 16 MiB, at the same speed). Raw blocks stay small: nothing gains from their size.
ZSTD_BLOCK_TARGET = 16 << 20
#: ... and a reader refuses a block larger than this unless it holds exactly one object in a
#: raw block (raw blocks are verified as a stream). So no zstd block ever decompresses to more
#: than this: what a receiver holds for one block is bounded whatever the pack says.
MAX_MULTI_BLOCK = 16 << 20
MAX_ZSTD_BLOCK = MAX_MULTI_BLOCK
#: zstd blocks may decompress to at most this many times the pack bytes read so far, plus
#: EXPANSION_ALLOWANCE: trees pack ~35:1, text ~5:1, while a zstd bomb (16 MiB of zeros in
#: 500 bytes) is ~30,000:1. Receivers set it (PackLimits.max_expansion).
EXPANSION_ALLOWANCE = 64 << 20
#: zstd level for compressible blobs (~0.4 GB/s here).
ZSTD_LEVEL = 3
#: zstd level for blocks of trees and commits: on tree versions level 1 packs smaller than
#: level 3 (2.47 MB against 2.60 MB for XL's trees and commits) and no slower.
ZSTD_LEVEL_META = 1
#: zstd window (log2): a whole block, so every earlier version in it is in reach.
ZSTD_WINDOW_LOG = 24
#: A block of blobs is compressed only if compression saves at least this fraction.
MIN_GAIN = 0.10
_PROBE_SLICE = 16 << 10
_PROBE_SLICES = 4
_CHUNK = 1 << 20
#: Raw single-object blocks above this size are verified as a stream by receivers.
STREAM_MIN = 16 << 20
#: Hashing and teeing move to a helper thread once a pack is this large (below, starting a
#: thread costs more than it saves).
_THREAD_MIN = 4 << 20

KINDS = frozenset(KIND_NAMES)
_TYPED = {kind: name.encode() + b" " for kind, name in KIND_NAMES.items()}
_MAX_U32 = 0xFFFFFFFF


class PackError(MuseError):
    """A pack that is malformed, truncated, corrupt, or over a limit (never anything else).

    ``code`` is a short machine-readable reason: ``bad_pack`` (malformed, truncated, checksum
    or hash mismatch, unknown kind, trailing bytes), ``too_large`` (a limit was exceeded) or
    ``missing_objects`` (raised by the connectivity check); ``str(e)`` is the human message.
    """

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message if message is not None else code)
        self.code = code

    def describe(self) -> str:
        return f"broken pack: {self.message}"


class PackLimits(Frozen):
    """What a reader accepts; ``None`` means unlimited. Checked before anything is allocated."""

    __slots__ = (
        "max_object_bytes",
        "max_pack_bytes",
        "max_objects",
        "max_decompressed_bytes",
        "max_expansion",
        "budget",
    )

    max_object_bytes: int | None
    max_pack_bytes: int | None
    max_objects: int | None
    max_decompressed_bytes: int | None
    #: zstd output may reach max_expansion x the pack bytes read so far + EXPANSION_ALLOWANCE.
    max_expansion: int | None
    #: Shared by every reader of a process, so concurrent decodes cannot multiply memory.
    budget: DecodeBudget | None

    def __init__(
        self,
        max_object_bytes: int | None = None,
        max_pack_bytes: int | None = None,
        max_objects: int | None = None,
        max_decompressed_bytes: int | None = None,
        max_expansion: int | None = None,
        budget: DecodeBudget | None = None,
    ) -> None:
        _set = object.__setattr__
        _set(self, "max_object_bytes", max_object_bytes)
        _set(self, "max_pack_bytes", max_pack_bytes)
        _set(self, "max_objects", max_objects)
        _set(self, "max_decompressed_bytes", max_decompressed_bytes)
        _set(self, "max_expansion", max_expansion)
        _set(self, "budget", budget)


class DecodeBudget:
    """Bytes of decompressed blocks that all readers of one process may hold at once.

    A reader takes a block's size before decompressing it and gives it back when it moves to
    the next block (or stops), so N concurrent pushes cost at most ``total`` bytes between
    them, not N blocks each. A reader that cannot get its share within ``wait`` seconds fails
    with ``busy`` (the hub answers 503), instead of queueing without bound.
    """

    def __init__(self, total: int, wait: float = 30.0) -> None:
        if total < MAX_ZSTD_BLOCK:
            raise ValueError(f"a decode budget must hold one block ({MAX_ZSTD_BLOCK} bytes)")
        self.total = total
        self.wait = wait
        self.used = 0
        self._cond = threading.Condition()

    def take(self, n: int) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + n <= self.total, self.wait):
                raise PackError("busy", "too many packs are being decoded at once; retry later")
            self.used += n

    def give(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


class _Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


# ----------------------------------------------------------------------------------- zstd
# Imported lazily so that `muse status` and friends never pay for loading zstandard.

_zstd_mod: Any = None
_local = threading.local()


def _zstd() -> Any:
    global _zstd_mod
    if _zstd_mod is None:
        import zstandard

        _zstd_mod = zstandard
    return _zstd_mod


def _compressor(level: int) -> Any:
    z = _zstd()
    params = z.ZstdCompressionParameters.from_level(
        level,
        window_log=ZSTD_WINDOW_LOG,
        write_content_size=True,
        write_checksum=False,
        write_dict_id=False,
    )
    return z.ZstdCompressor(compression_params=params)


def decompress_block(data: bytes | bytearray | memoryview, ulen: int) -> bytes:
    """Decompress one zstd block whose header promised ``ulen`` bytes (exactly one frame).

    The frame must declare its content size and it must equal ``ulen``; zstd itself refuses
    output beyond the declared size, so a lying header cannot make us allocate more.
    """
    z = _zstd()
    try:
        size = z.frame_content_size(data)
    except z.ZstdError as e:
        raise PackError("bad_pack", f"corrupt zstd block: {e}") from None
    if size != ulen:
        raise PackError("bad_pack", "zstd block does not declare its size as the header says")
    dctx = getattr(_local, "dctx", None)
    if dctx is None:  # one per thread (contexts are not thread-safe), reused across blocks
        dctx = _local.dctx = z.ZstdDecompressor(max_window_size=1 << 27)
    # One shot into a buffer of the declared size (five times faster on a 16 MiB block than
    # a decompressobj, which grows its output piece by piece); trailing bytes are refused.
    try:
        out = dctx.decompress(data, max_output_size=ulen, allow_extra_data=False)
    except z.ZstdError as e:
        raise PackError("bad_pack", f"corrupt zstd block or trailing bytes: {e}") from None
    if len(out) != ulen:
        raise PackError("bad_pack", "zstd block is truncated")
    return out


# --------------------------------------------------------------------------------- writer


class PackWriter:
    """Encode objects into a pack on ``out`` as they are added, in a few MiB at a time.

    Trees and commits are gathered into zstd blocks and blobs into blocks of their own (raw
    unless compression gains), each group keeping the order in which it was added: callers
    add trees of the same path or in history order next to each other, which is what makes
    them compress. Adding an object that is already in this pack does nothing.
    """

    def __init__(
        self,
        out: _Writable,
        compress: bool = True,
        on_block: Callable[[int, int, list[tuple[int, bytes, int, int]]], Any] | None = None,
    ) -> None:
        self.out = out
        self.compress = compress
        #: Called as on_block(block offset, codec, [(kind, oid, record offset, length)]) for
        #: every block written: how a pack at rest gets its index without a second pass.
        self.on_block = on_block
        self.objects = 0
        self.bytes_written = 0
        #: SHA-256 of the whole pack, trailer included, once finished: what an object store
        #: checks a checksum-bound upload against (docs/wire.md §3), at no second pass.
        self.file_sha256: bytes | None = None
        self._hash = hashlib.sha256()
        self._seen: set[bytes] = set()
        self._finished = False
        # Pending blocks: [parts, count, size]. "meta" = trees+commits, "blob" = blobs.
        self._meta: list[bytes] = []
        self._meta_recs: list[tuple[int, bytes, int, int]] = []
        self._meta_size = 0
        self._blob: list[bytes] = []
        self._blob_recs: list[tuple[int, bytes, int, int]] = []
        self._blob_size = 0
        #: Whether the pending blob block probed compressible (None: not asked yet).
        self._blob_gains: bool | None = None
        self._zc: dict[int, Any] = {}
        self._emit(HEADER)

    def _emit(self, data: bytes) -> None:
        self.out.write(data)
        self._hash.update(data)
        self.bytes_written += len(data)

    def add(self, kind: int, body: bytes, oid: bytes | None = None) -> bytes:
        """Add one object; ``oid`` may be given when already known (it is trusted). Returns it."""
        if self._finished:
            raise ValueError("pack already finished")
        if kind not in KINDS:
            raise ValueError(f"unknown object kind {kind}")
        if len(body) > _MAX_U32 - RECORD_HEADER_LEN:
            raise ValueError("object too large for a pack (4 GiB)")
        if oid is None:
            oid = object_id(kind, body)
        if oid in self._seen:
            return oid
        self._seen.add(oid)
        head = RECORD_HEADER.pack(kind, oid, len(body))
        size = RECORD_HEADER_LEN + len(body)
        if kind == BLOB:
            if self._blob_size and self._blob_size + size > BLOCK_TARGET:
                if self._blob_size + size > ZSTD_BLOCK_TARGET or not self._blobs_compress():
                    self._flush_blobs()
            self._blob += (head, body)
            self._blob_recs.append((kind, oid, self._blob_size, len(body)))
            self._blob_size += size
        else:
            if self._meta_size and self._meta_size + size > ZSTD_BLOCK_TARGET:
                self._flush_meta()
            self._meta += (head, body)
            self._meta_recs.append((kind, oid, self._meta_size, len(body)))
            self._meta_size += size
        self.objects += 1
        return oid

    def _flush_meta(self) -> None:
        if self._meta_recs:
            parts, recs, size = self._meta, self._meta_recs, self._meta_size
            self._meta, self._meta_recs, self._meta_size = [], [], 0
            if len(recs) != 1:
                parts = [b"".join(parts)]
            compress = self.compress and size <= MAX_ZSTD_BLOCK
            self._write_block(parts, size, recs, compress, ZSTD_LEVEL_META)

    def _blobs_compress(self) -> bool:
        """Whether the pending blob block compresses (probed once, when it reaches
        BLOCK_TARGET): only then may it grow to ZSTD_BLOCK_TARGET."""
        if self._blob_gains is None:
            joined = b"".join(self._blob)
            if len(self._blob_recs) > 1:  # the flush joins one part for free
                self._blob = [joined]
            self._blob_gains = self.compress and _probe_gains(joined)
        return self._blob_gains

    def _flush_blobs(self) -> None:
        if self._blob_recs:
            # Trees and commits added before these blobs go first: a receiver then meets a
            # tree before the blobs it names (what muse.core.warm relies on), and a history
            # laid out for a pack (commits, trees, then blobs) keeps its trees in one block.
            self._flush_meta()
            parts, recs, size = self._blob, self._blob_recs, self._blob_size
            gains = self._blob_gains
            self._blob, self._blob_recs, self._blob_size = [], [], 0
            self._blob_gains = None
            sample = parts[1] if len(recs) == 1 else b"".join(parts)
            if len(recs) != 1:
                parts = [sample]
            if gains is None:
                gains = _probe_gains(sample)
            compress = self.compress and size <= MAX_ZSTD_BLOCK and gains
            self._write_block(parts, size, recs, compress, ZSTD_LEVEL)

    def _write_block(
        self,
        parts: list[bytes],
        size: int,
        recs: list[tuple[int, bytes, int, int]],
        compress: bool,
        level: int,
    ) -> None:
        """Emit one block. A single (possibly huge) record is never copied into one buffer."""
        offset = self.bytes_written
        codec = CODEC_RAW
        packed = b""
        if compress:
            zc = self._zc.get(level)
            if zc is None:
                zc = self._zc[level] = _compressor(level)
            if len(parts) == 1:
                packed = zc.compress(parts[0])
            else:
                cobj = zc.compressobj(size=size)
                packed = b"".join([*(cobj.compress(p) for p in parts), cobj.flush()])
            if len(packed) <= size * (1 - MIN_GAIN):
                codec = CODEC_ZSTD
        if codec == CODEC_ZSTD:
            self._emit(BLOCK_HEADER.pack(CODEC_ZSTD, len(recs), size, len(packed)))
            self._emit(packed)
        else:
            del packed
            self._emit(BLOCK_HEADER.pack(CODEC_RAW, len(recs), size, size))
            for p in parts:
                self._emit(p)
        if self.on_block is not None:
            self.on_block(offset, codec, recs)

    def finish(self) -> bytes:
        """Flush the last blocks and write the trailer; returns the pack checksum (32 bytes)."""
        if self._finished:
            raise ValueError("pack already finished")
        self._flush_meta()
        self._flush_blobs()
        self._emit(bytes([END_TAG]) + self.objects.to_bytes(8, "big"))
        digest = self._hash.digest()
        self.out.write(digest)
        self._hash.update(digest)
        self.file_sha256 = self._hash.digest()
        self.bytes_written += len(digest)
        self._finished = True
        return digest


def _probe_gains(data: bytes) -> bool:
    """Whether zstd is worth running over a block of blobs, judged on a small sample.

    Level 1 over at most 64 KiB costs ~0.1 ms per 4 MiB block, so incompressible content
    (the usual case: audio, images, archives) pays almost nothing for the question.
    """
    n = len(data)
    if n <= _PROBE_SLICE * _PROBE_SLICES:
        sample = data
    else:
        step = n // _PROBE_SLICES
        sample = b"".join(data[i * step : i * step + _PROBE_SLICE] for i in range(_PROBE_SLICES))
    if len(sample) < 64:
        return False
    probe = getattr(_local, "probe", None)
    if probe is None:  # zstd contexts are not thread-safe: one per thread, reused
        probe = _local.probe = _zstd().ZstdCompressor(level=1, write_content_size=False)
    packed = probe.compress(sample)
    return len(packed) <= len(sample) * (1 - MIN_GAIN)


def write_pack(
    out: _Writable, objects: Iterable[tuple[int, bytes]], compress: bool = True
) -> bytes:
    """Write (kind, body) items as one pack on ``out``; returns the pack checksum."""
    w = PackWriter(out, compress=compress)
    for kind, body in objects:
        w.add(kind, body)
    return w.finish()


# --------------------------------------------------------------------------------- reader


class Block:
    """One decoded block: where it starts in the pack, its codec, its records' bytes.

    ``record`` is set instead of ``data`` for a large raw single-object block that the reader
    streamed (``stream_large``): (kind, oid, length), its id already verified.
    """

    __slots__ = ("offset", "codec", "count", "data", "record", "end")

    def __init__(
        self,
        offset: int,
        codec: int,
        count: int,
        data: bytes | bytearray,
        record: tuple[int, bytes, int] | None = None,
        end: int = 0,
    ) -> None:
        self.offset = offset
        self.codec = codec
        self.count = count
        self.data = data
        self.record = record
        self.end = end  # offset just after the block (where the next one starts)

    def __repr__(self) -> str:
        return f"Block(offset={self.offset}, codec={self.codec}, count={self.count})"


class _Source:
    """Reads exact amounts from a stream, counting and hashing every byte (and teeing it)."""

    def __init__(
        self, stream: BinaryIO, limit: int | None, tee: Callable[[bytes | bytearray], Any] | None
    ) -> None:
        self.stream = stream
        self.limit = limit
        self.tee = tee
        self.pos = 0
        self.hash = hashlib.sha256()
        # Large packs hash (and tee to disk) on a second thread while the caller decompresses
        # and re-hashes objects: hashlib and file writes release the GIL, so receiving runs
        # on two cores. The queue is short, so memory stays at a few blocks.
        self._queue: queue.Queue[tuple[bytes | bytearray, bool] | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._into = callable(getattr(stream, "readinto", None))

    def _readinto(self, view: memoryview) -> int | None:
        """``stream.readinto(view)``, or None (from then on) where the stream has only
        ``read`` (an ``io.RawIOBase`` that implements just that raises NotImplementedError)."""
        try:
            return self.stream.readinto(view)  # type: ignore[attr-defined, no-any-return]
        except (NotImplementedError, io.UnsupportedOperation):
            self._into = False
            return None

    def _consume(self, data: bytes | bytearray, hashed: bool) -> None:
        if self._error is not None:
            raise self._error
        if self._queue is None and self.pos >= _THREAD_MIN:
            self._queue = queue.Queue(maxsize=4)
            self._thread = threading.Thread(target=self._work, name="pack-hash", daemon=True)
            self._thread.start()
        if self._queue is not None:
            self._queue.put((data, hashed))
            return
        if hashed:
            self.hash.update(data)
        if self.tee is not None:
            self.tee(data)

    def _work(self) -> None:
        q = self._queue
        assert q is not None
        while True:
            item = q.get()
            if item is None:
                return
            if self._error is not None:
                continue
            data, hashed = item
            try:
                if hashed:
                    self.hash.update(data)
                if self.tee is not None:
                    self.tee(data)
            except BaseException as e:  # reported to the reading thread by drain()
                self._error = e

    def drain(self) -> None:
        """Wait until every byte read so far is hashed and teed; re-raise a tee failure."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            self._queue = None
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Stop the helper thread without raising (used when decoding failed anyway)."""
        if self._thread is not None and self._queue is not None:
            self._error = self._error or PackError("bad_pack", "reading abandoned")
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            self._queue = None

    def digest(self) -> bytes:
        self.drain()
        return self.hash.digest()

    def need(self, n: int, what: str) -> None:
        """Refuse before reading if ``n`` more bytes would break the pack size limit."""
        if self.limit is not None and self.pos + n > self.limit:
            raise PackError("too_large", f"pack exceeds the limit of {self.limit} bytes")

    def read(self, n: int, what: str, hashed: bool = True) -> bytes | bytearray:
        self.need(n, what)
        # Ask for at most 1 MiB at a time: a header that promises a huge object must not
        # make us allocate before the bytes have actually arrived.
        data: bytes | bytearray = self.stream.read(min(n, _CHUNK)) or b""
        if len(data) != n:
            data = self._read_rest(data, n, what)
        self.pos += n
        self._consume(data, hashed)
        return data

    def _read_rest(self, first: bytes | bytearray, n: int, what: str) -> bytearray:
        """The rest of an ``n``-byte read whose first piece came short.

        Up to a block's bound (``MAX_MULTI_BLOCK``) the buffer is allocated whole, once bytes
        have begun to arrive, and filled in place (``readinto`` where the stream has it).
        Growing a bytearray piece by piece instead made several allocations of changing
        sizes per block, which the C allocator served from freshly mapped pages each time:
        decoding a 512 MiB pack of 64 KiB chunks took 1.1 s here, 0.7 s this way
        (docs/benchmarks.md, "Pack decoding"). Beyond the bound the buffer grows only with
        the bytes that did arrive, so a header promising a huge object allocates nothing
        ahead of them.
        """
        got = len(first)
        if not got:
            raise self._cut_short(what)
        if n > MAX_MULTI_BLOCK:
            grown = bytearray(first)
            while len(grown) < n:
                chunk = self.stream.read(min(n - len(grown), _CHUNK))
                if not chunk:
                    raise self._cut_short(what)
                grown += chunk
            return grown
        heap.tune_once()  # blocks of MiBs: keep their memory for the next ones
        buf = bytearray(n)
        view = memoryview(buf)
        view[:got] = first
        while got < n:
            k = self._readinto(view[got:]) if self._into else None
            if k is None:
                chunk = self.stream.read(n - got)
                k = len(chunk)
                view[got : got + k] = chunk
            if not k:
                raise self._cut_short(what)
            got += k
        view.release()
        return buf

    def _cut_short(self, what: str) -> PackError:
        return PackError("bad_pack", f"truncated pack: {what} at offset {self.pos} cut short")


def _check_block_header(
    codec: int,
    count: int,
    ulen: int,
    clen: int,
    limits: PackLimits,
    objects_so_far: int,
    decompressed_so_far: int,
    offset: int,
) -> None:
    if codec not in (CODEC_RAW, CODEC_ZSTD):
        raise PackError("bad_pack", f"unknown block codec {codec} at offset {offset}")
    if count == 0:
        raise PackError("bad_pack", f"empty block at offset {offset}")
    if ulen < count * RECORD_HEADER_LEN:
        raise PackError("bad_pack", f"block at offset {offset} too short for {count} objects")
    if ulen > MAX_MULTI_BLOCK and count != 1:
        raise PackError("bad_pack", f"oversized block at offset {offset}")
    if codec == CODEC_RAW and clen != ulen:
        raise PackError("bad_pack", f"raw block at offset {offset} with mismatched lengths")
    if codec == CODEC_ZSTD and clen > ulen + (ulen >> 7) + 1024:
        raise PackError("bad_pack", f"zstd block at offset {offset} larger than possible")
    if codec == CODEC_ZSTD and ulen > MAX_ZSTD_BLOCK:
        raise PackError("bad_pack", f"zstd block at offset {offset} over {MAX_ZSTD_BLOCK} bytes")
    if limits.max_objects is not None and objects_so_far + count > limits.max_objects:
        raise PackError("too_large", f"pack holds more than {limits.max_objects} objects")
    if (
        limits.max_object_bytes is not None
        and ulen - count * RECORD_HEADER_LEN > limits.max_object_bytes
        and count == 1
    ):
        raise PackError("too_large", f"object larger than {limits.max_object_bytes} bytes")
    if (
        limits.max_decompressed_bytes is not None
        and decompressed_so_far + ulen > limits.max_decompressed_bytes
    ):
        raise PackError(
            "too_large", f"pack decompresses to more than {limits.max_decompressed_bytes} bytes"
        )


def _check_expansion(limits: PackLimits, zstd_out: int, pack_bytes: int, offset: int) -> None:
    ratio = limits.max_expansion
    if ratio is not None and zstd_out > EXPANSION_ALLOWANCE + ratio * pack_bytes:
        raise PackError(
            "too_large",
            f"zstd blocks expand more than {ratio}:1 (block at offset {offset}): refused as a bomb",
        )


class BlockReader:
    """Decode a pack block by block (decompressed, not yet split into records).

    The building block of :func:`read_pack` and of receiving a pack to disk: ``tee`` gets every
    byte read, in order, so a receiver stores the pack while it is verified. Block structure,
    limits, count and checksum are checked here, object ids by :func:`iter_records`. The
    checksum is checked after the last block: a consumer must trust nothing until iteration
    ended without error; then ``checksum``, ``objects`` and ``size`` are set.
    """

    def __init__(
        self,
        stream: BinaryIO,
        limits: PackLimits | None = None,
        tee: Callable[[bytes | bytearray], Any] | None = None,
        stream_large: bool = False,
    ) -> None:
        self.stream = stream
        self.limits = limits or PackLimits()
        self.tee = tee
        #: Verify a raw block holding one object over STREAM_MIN bytes piece by piece instead
        #: of materialising it (for receivers that only store: memory stays flat for a 1 GB
        #: file); such a block is yielded with ``record`` set and empty ``data``.
        self.stream_large = stream_large
        self.checksum: bytes | None = None
        #: SHA-256 of the whole pack, trailer included (set with ``checksum``): the running
        #: hash of the checksum's own input, fed the checksum, so no second pass is needed
        self.file_sha256: bytes | None = None
        self.objects = 0
        self.size = 0
        #: Every id met so far: a pack never holds an object twice (a receiver refuses it,
        #: so millions of copies of one small record cost nothing but the bytes sent).
        self.seen: set[bytes] = set()
        self._held = 0  # bytes taken from the decode budget for the block being consumed

    def __iter__(self) -> Iterator[Block]:
        src = _Source(self.stream, self.limits.max_pack_bytes, self.tee)
        try:
            yield from self._blocks(src)
        finally:
            self._give_back()
            src.close()

    def _give_back(self) -> None:
        if self._held and self.limits.budget is not None:
            self.limits.budget.give(self._held)
        self._held = 0

    def _blocks(self, src: _Source) -> Iterator[Block]:
        lim = self.limits
        if src.read(HEADER_LEN, "header") != HEADER:
            raise PackError("bad_pack", "not a MuseWire pack (bad magic or version)")
        objects = 0
        decompressed = 0
        zstd_out = 0
        budget = lim.budget
        while True:
            self._give_back()  # the consumer is done with the previous block
            offset = src.pos
            tag = src.read(1, "block header")[0]
            if tag == END_TAG:
                break
            rest = src.read(BLOCK_HEADER_LEN - 1, "block header")
            codec, count, ulen, clen = BLOCK_HEADER.unpack(bytes([tag]) + rest)
            _check_block_header(codec, count, ulen, clen, lim, objects, decompressed, offset)
            if self.stream_large and codec == CODEC_RAW and count == 1 and ulen > STREAM_MIN:
                record = _stream_record(src, ulen, lim, offset)
                if record[1] in self.seen:
                    raise PackError("bad_pack", f"object {record[1].hex()} is in the pack twice")
                self.seen.add(record[1])
                decompressed += ulen
                objects += 1
                yield Block(offset, codec, 1, b"", record, src.pos)
                continue
            payload = src.read(clen, "block")
            if codec == CODEC_ZSTD:
                zstd_out += ulen
                _check_expansion(lim, zstd_out, src.pos, offset)
                if budget is not None:
                    budget.take(ulen)
                    self._held = ulen
                data: bytes | bytearray = decompress_block(payload, ulen)
            else:
                data = payload
            decompressed += ulen
            objects += count
            yield Block(offset, codec, count, data, None, src.pos)
        declared = int.from_bytes(src.read(8, "trailer"), "big")
        if declared != objects:
            raise PackError("bad_pack", f"trailer says {declared} objects, pack holds {objects}")
        digest = src.digest()
        if src.read(32, "checksum", hashed=False) != digest:
            raise PackError("bad_pack", "pack checksum mismatch")
        if self.stream.read(1):
            raise PackError("bad_pack", "trailing bytes after the pack checksum")
        src.drain()
        whole = src.hash.copy()
        whole.update(digest)
        self.file_sha256 = whole.digest()
        self.checksum = digest
        self.objects = objects
        self.size = src.pos


def _stream_record(
    src: _Source, ulen: int, limits: PackLimits, offset: int
) -> tuple[int, bytes, int]:
    """Read and verify a raw block's only record in 1 MiB pieces (nothing kept)."""
    kind, oid, length = RECORD_HEADER.unpack(src.read(RECORD_HEADER_LEN, "record header"))
    if kind not in KINDS:
        raise PackError("bad_pack", f"unknown object kind {kind} in block at {offset}")
    if length != ulen - RECORD_HEADER_LEN:
        raise PackError("bad_pack", f"block at offset {offset} does not hold exactly its object")
    if limits.max_object_bytes is not None and length > limits.max_object_bytes:
        raise PackError("too_large", f"object larger than {limits.max_object_bytes} bytes")
    h = hashlib.sha256(_TYPED[kind] + b"%d\0" % length)
    left = length
    while left:
        piece = src.read(min(left, _CHUNK), "object")
        h.update(piece)
        left -= len(piece)
    if h.digest() != oid:
        raise PackError("bad_pack", f"object {oid.hex()} does not hash to its id")
    return kind, oid, length


def read_blocks(
    stream: BinaryIO,
    limits: PackLimits | None = None,
    tee: Callable[[bytes | bytearray], Any] | None = None,
) -> Iterator[Block]:
    """Iterate the blocks of a pack (see :class:`BlockReader`)."""
    return iter(BlockReader(stream, limits, tee))


def iter_records(
    block: Block,
    limits: PackLimits | None = None,
    verify: bool = True,
    seen: set[bytes] | None = None,
) -> Iterator[tuple[int, bytes, memoryview, int]]:
    """Split a block into (kind, oid, body view, record offset within the block data).

    With ``verify`` every id is re-hashed from its body; a mismatch is a PackError. With
    ``seen`` (a receiver's :attr:`BlockReader.seen`) an id met twice is refused.
    """
    if block.record is not None:
        raise ValueError("a streamed block has no record bytes (use block.record)")
    max_obj = limits.max_object_bytes if limits is not None else None
    data = memoryview(block.data)
    end = len(data)
    pos = 0
    unpack = RECORD_HEADER.unpack_from
    sha256 = hashlib.sha256
    for _ in range(block.count):
        if pos + RECORD_HEADER_LEN > end:
            raise PackError("bad_pack", f"block at offset {block.offset} ends inside a record")
        kind, oid, length = unpack(data, pos)
        if kind not in KINDS:
            raise PackError("bad_pack", f"unknown object kind {kind} in block at {block.offset}")
        if max_obj is not None and length > max_obj:
            raise PackError("too_large", f"object larger than {max_obj} bytes")
        start = pos + RECORD_HEADER_LEN
        stop = start + length
        if stop > end:
            raise PackError("bad_pack", f"block at offset {block.offset} ends inside an object")
        body = data[start:stop]
        if seen is not None:
            if oid in seen:
                raise PackError("bad_pack", f"object {oid.hex()} is in the pack twice")
            seen.add(oid)
        if verify:
            h = sha256(_TYPED[kind] + b"%d\0" % length)  # objects.header(), inlined
            h.update(body)
            if h.digest() != oid:
                raise PackError("bad_pack", f"object {oid.hex()} does not hash to its id")
        yield kind, oid, body, pos
        pos = stop
    if pos != end:
        raise PackError("bad_pack", f"block at offset {block.offset} has bytes after its records")


def read_pack(
    stream: BinaryIO, limits: PackLimits | None = None
) -> Iterator[tuple[int, bytes, bytes]]:
    """Yield (kind, oid, body) for every object of a pack, each id re-hashed from its body.

    Memory stays at one block whatever the pack size. Raises PackError on anything wrong,
    including a bad or missing trailer, so only what was yielded before the iterator ended
    without error may be trusted.
    """
    reader = BlockReader(stream, limits)
    for block in reader:
        for kind, oid, body, _ in iter_records(block, limits, seen=reader.seen):
            yield kind, oid, bytes(body)
