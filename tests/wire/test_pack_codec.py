"""The pack codec: round trips, streaming, limits and every kind of corruption."""

from __future__ import annotations

import io
import random
import struct
import tracemalloc
from collections.abc import Iterator

import pytest

from muse.core import objects as O
from muse.core.pack import codec as P
from muse.core.pack.codec import PackError, PackLimits, PackWriter, read_pack, write_pack


def small_objects() -> list[tuple[int, bytes]]:
    blob = b"\x00" + random.Random("small").randbytes(300)
    text = b"hello world\n" * 50
    tree = O.encode_tree(
        [
            ("a.bin", O.MODE_FILE, O.object_id(O.BLOB, blob)),
            ("t.txt", O.MODE_FILE, O.object_id(O.BLOB, text)),
        ]
    )
    sig = O.Signature("A U Thor", "a@example.invalid", 1704067200)
    commit = O.Commit(O.object_id(O.TREE, tree), (), sig, sig, "first\n").encode()
    return [(O.BLOB, blob), (O.BLOB, text), (O.TREE, tree), (O.COMMIT, commit)]


def encode(objs: list[tuple[int, bytes]], compress: bool = True) -> bytes:
    out = io.BytesIO()
    write_pack(out, objs, compress=compress)
    return out.getvalue()


def decode(data: bytes, limits: PackLimits | None = None) -> list[tuple[int, bytes, bytes]]:
    return list(read_pack(io.BytesIO(data), limits))


def as_set(objs: list[tuple[int, bytes]]) -> set[tuple[int, bytes, bytes]]:
    return {(k, O.object_id(k, b), b) for k, b in objs}


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(compress: bool) -> None:
    objs = small_objects()
    got = decode(encode(objs, compress))
    assert set(got) == as_set(objs)
    assert len(got) == len(objs)


def test_empty_pack() -> None:
    data = encode([])
    assert data.startswith(P.HEADER)
    assert len(data) == P.HEADER_LEN + P.TRAILER_LEN
    assert decode(data) == []


def test_writer_gives_the_whole_files_sha256() -> None:
    """What a checksum-bound presigned upload is signed with (docs/wire.md, push/presign):
    the digest of every byte of the file, trailer included; the vector of the empty pack."""
    import hashlib

    out = io.BytesIO()
    w = PackWriter(out)
    assert w.file_sha256 is None
    w.finish()
    assert hashlib.sha256(out.getvalue()).digest() == w.file_sha256
    assert w.file_sha256.hex() == (
        "4f02e269efcf721d4a9b4a4ca1f0b81404722b0dc34629a343105957b8af2b5e"
    )
    out = io.BytesIO()
    w = PackWriter(out)
    for i in range(50):
        w.add(O.BLOB, random.Random(i).randbytes(30_000))
    w.finish()
    assert hashlib.sha256(out.getvalue()).digest() == w.file_sha256


def test_writer_api_returns_ids_and_counts() -> None:
    out = io.BytesIO()
    w = PackWriter(out)
    oid = w.add(O.BLOB, b"abc")
    assert oid == O.object_id(O.BLOB, b"abc")
    assert w.add(O.BLOB, b"abc") == oid  # duplicate: written once
    checksum = w.finish()
    assert w.objects == 1
    assert w.bytes_written == len(out.getvalue())
    assert out.getvalue()[-32:] == checksum
    with pytest.raises(ValueError):
        w.add(O.BLOB, b"late")
    with pytest.raises(ValueError):
        PackWriter(io.BytesIO()).add(9, b"x")


def test_trees_compress_and_random_blobs_stay_raw() -> None:
    rng = random.Random(1)
    blobs = [b"\x00" + rng.randbytes(4095) for _ in range(300)]
    entries: list[tuple[str, int, bytes]] = []
    trees = []
    for i, b in enumerate(blobs):
        entries.append((f"f{i:04d}.bin", O.MODE_FILE, O.object_id(O.BLOB, b)))
        trees.append(O.encode_tree(entries))
    tree_bytes = sum(map(len, trees))
    data = encode([(O.TREE, t) for t in trees])
    assert len(data) < tree_bytes / 10
    blob_pack = encode([(O.BLOB, b) for b in blobs])
    raw = sum(len(b) + P.RECORD_HEADER_LEN for b in blobs)
    # Incompressible blobs travel raw: the pack is the records plus a few headers.
    assert raw < len(blob_pack) < raw + 200
    text = [b"line %d of a very repetitive text file\n" % i * 100 for i in range(50)]
    assert len(encode([(O.BLOB, t) for t in text])) < sum(map(len, text)) / 5


def test_large_object_gets_its_own_block() -> None:
    big = random.Random(2).randbytes(P.BLOCK_TARGET + 1000)
    objs = [(O.BLOB, b"small"), (O.BLOB, big), (O.BLOB, b"small2")]
    assert set(decode(encode(objs))) == as_set(objs)


def _block_sizes(data: bytes) -> list[tuple[int, int]]:
    """(codec, uncompressed length) of every block of a pack."""
    return [(b.codec, len(b.data)) for b in P.BlockReader(io.BytesIO(data))]


def test_compressible_blobs_share_large_blocks_and_raw_ones_stay_small() -> None:
    rng = random.Random(3)
    words = [b"kick", b"snare", b"hat", b"bass", b"pad", b"lead"]
    text = b" ".join(rng.choice(words) for _ in range(2_000_000))
    versions = [b"%d " % i + text[i * 5_000 :][:1_000_000] for i in range(40)]  # 40 MB
    sizes = _block_sizes(encode([(O.BLOB, v) for v in versions]))
    assert all(codec == P.CODEC_ZSTD for codec, _ in sizes)
    assert P.BLOCK_TARGET < max(u for _, u in sizes) <= P.ZSTD_BLOCK_TARGET
    noise = [rng.randbytes(1_000_000) for _ in range(12)]
    sizes = _block_sizes(encode([(O.BLOB, n) for n in noise]))
    assert all(codec == P.CODEC_RAW and u <= P.BLOCK_TARGET for codec, u in sizes)
    assert set(decode(encode([(O.BLOB, n) for n in noise]))) == as_set([(O.BLOB, n) for n in noise])


class Trickle(io.RawIOBase):
    """A stream that returns at most a few bytes per read (like a slow socket)."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self.data = data
        self.pos = 0
        self.step = step

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        k = min(self.step, n if n >= 0 else self.step)
        chunk = self.data[self.pos : self.pos + k]
        self.pos += len(chunk)
        return chunk


def test_short_reads() -> None:
    objs = small_objects()
    got = list(read_pack(Trickle(encode(objs)), None))  # type: ignore[arg-type]
    assert set(got) == as_set(objs)


class TrickleInto(Trickle):
    """A Trickle with ``readinto`` (as a buffered file or socket has): short pieces too."""

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


def _big_blocks() -> list[tuple[int, bytes]]:
    """Incompressible blobs in raw blocks of a few MiB each (over the 1 MiB first read), and
    one 17 MiB blob: a block past MAX_MULTI_BLOCK, which is read by growing."""
    rng = random.Random("big")
    objs = [(O.BLOB, rng.randbytes(64 << 10)) for _ in range(80)]
    return objs + [(O.BLOB, rng.randbytes(P.MAX_MULTI_BLOCK + (1 << 20)))]


@pytest.mark.parametrize("stream", [Trickle, TrickleInto, io.BytesIO])
def test_blocks_over_a_read_piece_arrive_whole(stream: type) -> None:
    """Blocks longer than one read (1 MiB) are put together byte for byte from pieces of any
    size, whether the stream fills a buffer in place (readinto) or only returns bytes."""
    objs = _big_blocks()
    data = encode(objs, compress=False)
    blocks = list(P.read_blocks(io.BytesIO(data)))
    assert any((1 << 20) < len(b.data) <= P.MAX_MULTI_BLOCK for b in blocks)
    assert any(len(b.data) > P.MAX_MULTI_BLOCK for b in blocks)
    src = stream(data, 64 << 10) if stream is not io.BytesIO else io.BytesIO(data)
    assert set(read_pack(src)) == as_set(objs)


@pytest.mark.parametrize("stream", [Trickle, TrickleInto])
def test_a_block_cut_inside_is_refused_wherever_it_stops(stream: type) -> None:
    data = encode(_big_blocks()[:40], compress=False)
    first = P.HEADER_LEN + P.BLOCK_HEADER_LEN
    for cut in (first, first + 1, first + (1 << 20), first + (1 << 20) + 1, len(data) - 40):
        with pytest.raises(PackError) as info:
            list(read_pack(stream(data[:cut], 300 << 10)))
        assert info.value.code == "bad_pack" and "cut short" in info.value.message


def test_a_block_header_alone_allocates_nothing_ahead() -> None:
    """A block that promises 16 MiB and never sends a byte of it costs no 16 MiB buffer."""
    block = P.BLOCK_HEADER.pack(P.CODEC_RAW, 1, P.MAX_MULTI_BLOCK, P.MAX_MULTI_BLOCK)
    tracemalloc.start()
    try:
        with pytest.raises(PackError):
            list(read_pack(TrickleInto(P.HEADER + block, 1 << 20)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20, peak


class Generated(io.RawIOBase):
    """A pack produced on the fly, never held whole in memory."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.buf = b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while len(self.buf) < n:
            try:
                self.buf += next(self.chunks)
            except StopIteration:
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _generated_pack(count: int) -> Iterator[bytes]:
    """Encode `count` incompressible 64 KiB blobs, yielding the pack as it is written."""
    sink = io.BytesIO()
    w = PackWriter(sink)
    rng = random.Random(3)
    for _ in range(count):
        w.add(O.BLOB, rng.randbytes(64 << 10))
        if sink.tell():
            yield sink.getvalue()
            sink.seek(0)
            sink.truncate()
    w.finish()
    yield sink.getvalue()


def test_streaming_memory_is_flat() -> None:
    """Reading a 64 MiB pack from a generator needs a few blocks of memory, not the pack."""
    tracemalloc.start()
    try:
        n = 0
        total = 0
        for _kind, _oid, body in read_pack(Generated(_generated_pack(1024))):  # type: ignore[arg-type]
            n += 1
            total += len(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 1024 and total == 64 << 20
    assert peak < 40 << 20, peak


# ------------------------------------------------------------------------------ corruption


def _refused(data: bytes, limits: PackLimits | None = None) -> PackError:
    with pytest.raises(PackError) as info:
        decode(data, limits)
    return info.value


@pytest.mark.parametrize("compress", [True, False])
def test_every_truncation_is_refused(compress: bool) -> None:
    objs = small_objects() + [(O.TREE, O.encode_tree([]))] * 1
    data = encode(objs, compress)
    for cut in range(len(data)):
        err = _refused(data[:cut])
        assert err.code == "bad_pack"


def test_compressed_block_truncations_and_flips() -> None:
    rng = random.Random(5)
    entries = [(f"n{i}", O.MODE_FILE, rng.randbytes(32)) for i in range(40)]
    trees = [O.encode_tree(entries[:i]) for i in range(1, 40)]
    data = encode([(O.TREE, t) for t in trees])
    assert data[P.HEADER_LEN] == P.CODEC_ZSTD
    for cut in range(len(data)):
        _refused(data[:cut])
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        _refused(bytes(flipped))


@pytest.mark.parametrize("compress", [True, False])
def test_every_bit_flip_is_refused(compress: bool) -> None:
    data = encode(small_objects(), compress)
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        _refused(bytes(flipped))


def test_random_garbage_only_raises_pack_error() -> None:
    rng = random.Random(7)
    data = encode(small_objects())
    for _ in range(2000):
        d = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            d[rng.randrange(len(d))] = rng.randrange(256)
        if rng.random() < 0.3:
            d = d[: rng.randrange(len(d))]
        if bytes(d) == data:
            continue
        try:
            decode(bytes(d))
        except PackError:
            pass
    for n in range(200):
        try:
            decode(P.HEADER + rng.randbytes(n))
        except PackError:
            pass


def _resign(body: bytes) -> bytes:
    """Recompute the trailer checksum of a pack whose body (all but the checksum) changed."""
    return body + P.hashlib.sha256(body).digest()


def _raw_pack(records: list[tuple[int, bytes, bytes]], count: int | None = None) -> bytes:
    data = b"".join(P.RECORD_HEADER.pack(k, oid, len(b)) + b for k, oid, b in records)
    block = P.BLOCK_HEADER.pack(P.CODEC_RAW, len(records), len(data), len(data)) + data
    n = len(records) if count is None else count
    return _resign(P.HEADER + block + bytes([P.END_TAG]) + n.to_bytes(8, "big"))


def test_wrong_checksum() -> None:
    data = encode(small_objects())
    err = _refused(data[:-1] + bytes([data[-1] ^ 1]))
    assert "checksum" in str(err)


def test_wrong_hash_even_with_a_valid_checksum() -> None:
    body = b"content"
    err = _refused(_raw_pack([(O.BLOB, O.object_id(O.BLOB, b"other"), body)]))
    assert "hash" in str(err)
    # Same bytes under another kind do not hash to the blob id either.
    err = _refused(_raw_pack([(O.TREE, O.object_id(O.BLOB, body), body)]))
    assert err.code == "bad_pack"


def test_unknown_kind() -> None:
    err = _refused(_raw_pack([(7, O.object_id(O.BLOB, b"x"), b"x")]))
    assert "kind" in str(err)


def test_bad_trailer_count() -> None:
    err = _refused(_raw_pack([(O.BLOB, O.object_id(O.BLOB, b"x"), b"x")], count=2))
    assert "trailer" in str(err)


def test_bad_magic_and_version() -> None:
    data = encode(small_objects())
    assert "magic" in str(_refused(b"NOTAPACK" + data[8:]))
    assert "version" in str(_refused(P.MAGIC + (2).to_bytes(4, "big") + data[12:]))


def test_trailing_garbage() -> None:
    err = _refused(encode(small_objects()) + b"\x00")
    assert "trailing" in str(err)


def test_unknown_codec_and_empty_block() -> None:
    base = P.HEADER + P.BLOCK_HEADER.pack(9, 1, 40, 40) + bytes(40)
    assert "codec" in str(_refused(_resign(base + bytes([0]) + (1).to_bytes(8, "big"))))
    base = P.HEADER + P.BLOCK_HEADER.pack(P.CODEC_RAW, 0, 0, 0)
    assert "empty" in str(_refused(_resign(base + bytes([0]) + (0).to_bytes(8, "big"))))


def test_bytes_after_records_in_block() -> None:
    oid = O.object_id(O.BLOB, b"x")
    data = P.RECORD_HEADER.pack(O.BLOB, oid, 1) + b"x" + b"extra"
    block = P.BLOCK_HEADER.pack(P.CODEC_RAW, 1, len(data), len(data)) + data
    err = _refused(_resign(P.HEADER + block + bytes([0]) + (1).to_bytes(8, "big")))
    assert "after its records" in str(err)


# ---------------------------------------------------------------------------------- limits


def test_limits_accept_exactly_and_refuse_beyond() -> None:
    objs = small_objects()
    data = encode(objs)
    biggest = max(len(b) for _, b in objs)
    total_u = sum(len(b) + P.RECORD_HEADER_LEN for _, b in objs)
    ok = PackLimits(
        max_object_bytes=biggest,
        max_pack_bytes=len(data),
        max_objects=len(objs),
        max_decompressed_bytes=total_u,
    )
    assert len(decode(data, ok)) == len(objs)
    for lim in (
        PackLimits(max_object_bytes=biggest - 1),
        PackLimits(max_pack_bytes=len(data) - 1),
        PackLimits(max_objects=len(objs) - 1),
        PackLimits(max_decompressed_bytes=total_u - 1),
    ):
        assert _refused(data, lim).code == "too_large"


def test_pack_size_limit_refuses_before_reading_everything() -> None:
    """An endless stream is cut off at the limit, not read to its end."""

    class Endless(io.RawIOBase):
        def __init__(self, head: bytes) -> None:
            self.head = head
            self.served = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            self.served += n
            if self.head:
                out, self.head = self.head[:n], self.head[n:]
                return out
            return b"\x00" * n

    oid = O.object_id(O.BLOB, b"")
    head = P.HEADER + P.BLOCK_HEADER.pack(P.CODEC_RAW, 1, 1 << 30, 1 << 30)
    s = Endless(head + P.RECORD_HEADER.pack(O.BLOB, oid, (1 << 30) - 37))
    with pytest.raises(PackError) as info:
        list(read_pack(s, PackLimits(max_pack_bytes=1 << 20)))  # type: ignore[arg-type]
    assert info.value.code == "too_large"
    assert s.served < 2 << 20


def test_hostile_huge_decompressed_size_is_refused_before_allocating() -> None:
    """A zstd block claiming 4 GiB is refused from its header (no allocation, no bomb)."""
    zstd = P._zstd()
    bomb = zstd.ZstdCompressor(level=1).compress(b"\x00" * (1 << 20))
    for ulen, count in ((0xFFFFFFFF, 1), (0xFFFFFFFF, 1000), (64 << 20, 2)):
        block = P.BLOCK_HEADER.pack(P.CODEC_ZSTD, count, ulen, len(bomb)) + bomb
        data = _resign(P.HEADER + block + bytes([0]) + count.to_bytes(8, "big"))
        tracemalloc.start()
        try:
            err = _refused(data, PackLimits(max_decompressed_bytes=16 << 20))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert err.code in ("too_large", "bad_pack")
        assert peak < 8 << 20
    # Without limits a frame that decompresses to more than its header says is refused too.
    lying = P.BLOCK_HEADER.pack(P.CODEC_ZSTD, 1, 1000, len(bomb)) + bomb
    err = _refused(_resign(P.HEADER + lying + bytes([0]) + (1).to_bytes(8, "big")))
    assert err.code == "bad_pack"


def test_zstd_frame_with_trailing_bytes_is_refused() -> None:
    rec_body = b"a" * 1000
    oid = O.object_id(O.BLOB, rec_body)
    raw = P.RECORD_HEADER.pack(O.BLOB, oid, len(rec_body)) + rec_body
    frame = P._zstd().ZstdCompressor(level=3).compress(raw) + b"junk"
    block = P.BLOCK_HEADER.pack(P.CODEC_ZSTD, 1, len(raw), len(frame)) + frame
    err = _refused(_resign(P.HEADER + block + bytes([0]) + (1).to_bytes(8, "big")))
    assert "trailing" in str(err)


def test_object_count_limit_uses_block_headers() -> None:
    objs = [(O.BLOB, b"%d" % i) for i in range(100)]
    data = encode(objs, compress=False)
    assert _refused(data, PackLimits(max_objects=99)).code == "too_large"


def test_pack_error_code_and_message() -> None:
    e = PackError("missing_objects", "tree abc is missing")
    assert e.code == "missing_objects" and str(e) == "tree abc is missing"
    assert PackError("bad_pack").code == "bad_pack"


def test_record_header_layout() -> None:
    assert P.RECORD_HEADER_LEN == 37
    assert P.BLOCK_HEADER_LEN == 13
    assert struct.calcsize(">BIII") == 13


def _big_pack() -> bytes:
    rng = random.Random(8)
    return encode([(O.BLOB, rng.randbytes(64 << 10)) for _ in range(64)])  # 4 MiB: threaded


def test_tee_failure_propagates_and_stops_the_helper_thread() -> None:
    import threading

    data = _big_pack()
    calls = [0]

    def tee(chunk: bytes | bytearray) -> None:
        calls[0] += 1
        if calls[0] > 3:
            raise OSError("disk full")

    before = threading.active_count()
    with pytest.raises(OSError, match="disk full"):
        for _ in P.BlockReader(io.BytesIO(data), None, tee):
            pass
    assert threading.active_count() == before


def test_abandoned_reader_stops_its_thread() -> None:
    import gc
    import threading

    before = threading.active_count()
    it = read_pack(io.BytesIO(_big_pack()))
    next(it)
    del it
    gc.collect()
    assert threading.active_count() == before


def test_block_reader_reports_checksum_and_size() -> None:
    data = _big_pack()
    r = P.BlockReader(io.BytesIO(data))
    assert r.checksum is None
    blocks = list(r)
    assert r.checksum == data[-32:] and r.size == len(data) and r.objects == 64
    assert sum(b.count for b in blocks) == 64


def test_writer_does_not_copy_a_huge_object() -> None:
    class Null:
        def write(self, data: bytes) -> int:
            return len(data)

    huge = random.Random(12).randbytes(64 << 20)
    tracemalloc.start()
    try:
        w = PackWriter(Null())
        w.add(O.BLOB, huge)
        w.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


def test_large_compressible_single_objects_round_trip() -> None:
    tree = O.encode_tree([(f"n{i:07d}", O.MODE_FILE, bytes(32)) for i in range(150_000)])
    objs = [(O.BLOB, b"abc" * (2 << 20)), (O.TREE, tree), (O.BLOB, b"tail")]
    data = encode(objs)
    assert len(data) < 2 << 20
    assert set(decode(data)) == as_set(objs)


def _zstd_block(records: bytes, count: int) -> bytes:
    frame = P._compressor(1).compress(records)
    return P.BLOCK_HEADER.pack(P.CODEC_ZSTD, count, len(records), len(frame)) + frame


def _pack_of_blocks(blocks: list[bytes], count: int) -> bytes:
    return _resign(P.HEADER + b"".join(blocks) + bytes([0]) + count.to_bytes(8, "big"))


def test_zstd_block_over_the_block_bound_is_refused_from_its_header() -> None:
    """One record in a zstd block of 17 MiB (a 32 KB push that would cost 1 GiB) is refused."""
    frame = P._zstd().ZstdCompressor(level=1).compress(b"\x00" * 1024)
    ulen = P.MAX_ZSTD_BLOCK + (1 << 20)
    block = P.BLOCK_HEADER.pack(P.CODEC_ZSTD, 1, ulen, len(frame)) + frame
    err = _refused(_pack_of_blocks([block], 1))
    assert err.code == "bad_pack" and "over" in str(err)


def test_writer_never_compresses_a_block_over_the_bound() -> None:
    big = b"\x01" + b"\x00" * (P.MAX_ZSTD_BLOCK + 10)  # very compressible, but too big
    data = encode([(O.BLOB, big)])
    codec = P.BLOCK_HEADER.unpack_from(data, P.HEADER_LEN)[0]
    assert codec == P.CODEC_RAW
    assert decode(data)[0][2] == big


def test_zstd_bomb_is_refused_by_the_expansion_bound() -> None:
    """Blocks of 16 MiB of zeros each (~500 bytes) stop long before 4 GiB of output."""
    blocks = []
    for i in range(40):
        body = i.to_bytes(4, "big") + b"\x00" * (P.MAX_ZSTD_BLOCK - 4 - P.RECORD_HEADER_LEN)
        rec = P.RECORD_HEADER.pack(O.BLOB, O.object_id(O.BLOB, body), len(body)) + body
        blocks.append(_zstd_block(rec, 1))
    data = _pack_of_blocks(blocks, len(blocks))
    assert len(data) < 64 << 10
    decoded = 0
    with pytest.raises(PackError) as info:
        for block in P.read_blocks(io.BytesIO(data), PackLimits(max_expansion=250)):
            decoded += len(block.data)
    assert info.value.code == "too_large" and "expand" in str(info.value)
    assert decoded <= P.EXPANSION_ALLOWANCE + 250 * len(data)
    # Without the bound the same pack decodes (each block is a legal object).
    assert len(decode(data)) == 40


def test_duplicate_records_are_refused() -> None:
    body = b"x"
    rec = P.RECORD_HEADER.pack(O.BLOB, O.object_id(O.BLOB, body), 1) + body
    n = 100_000
    data = _pack_of_blocks([_zstd_block(rec * n, n)], n)
    assert len(data) < 10 << 10
    err = _refused(data)
    assert err.code == "bad_pack" and "twice" in str(err)
    # ... also when the copy sits in another block
    two = _pack_of_blocks([_zstd_block(rec, 1), _zstd_block(rec, 1)], 2)
    assert "twice" in str(_refused(two))


def test_decode_budget_is_shared_by_concurrent_readers() -> None:
    """Two readers sharing a one-block budget: the second waits until the first moves on."""
    import threading

    budget = P.DecodeBudget(P.MAX_ZSTD_BLOCK, wait=0.2)
    body = b"\x02" + b"\x00" * (P.MAX_ZSTD_BLOCK - 1 - P.RECORD_HEADER_LEN)
    rec = P.RECORD_HEADER.pack(O.BLOB, O.object_id(O.BLOB, body), len(body)) + body
    data = _pack_of_blocks([_zstd_block(rec, 1)], 1)
    limits = PackLimits(budget=budget)
    first = P.read_blocks(io.BytesIO(data), limits)
    next(first)  # holds the whole budget while its block is consumed
    assert budget.used == P.MAX_ZSTD_BLOCK
    errors: list[PackError] = []

    def second() -> None:
        try:
            list(P.read_blocks(io.BytesIO(data), limits))
        except PackError as e:
            errors.append(e)

    t = threading.Thread(target=second)
    t.start()
    t.join()
    assert [e.code for e in errors] == ["busy"]
    list(first)  # finishing gives the budget back
    assert budget.used == 0
    assert len(list(P.read_blocks(io.BytesIO(data), limits))) == 1
    assert budget.used == 0
