"""Packs at rest (muse.core.pack): index, random access, one-pass receive, atomicity."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
from wire_workload import build

from muse.core import objects as O
from muse.core.pack import codec as P
from muse.core.pack.codec import PackError, PackLimits, write_pack
from muse.core.pack.file import PackFile
from muse.core.pack.packset import PackSet
from muse.core.pack.write import layout_for_pack, receive_pack, write_pack_file


def pack_bytes(objs: list[tuple[int, bytes]]) -> bytes:
    out = io.BytesIO()
    write_pack(out, objs)
    return out.getvalue()


@pytest.fixture(scope="module")
def history():  # type: ignore[no-untyped-def]
    return build("M", 100, 5)


def listing(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def test_receive_then_read_everything(tmp_path: Path, history) -> None:  # type: ignore[no-untyped-def]
    objs = [(k, b) for k, _, b in history.objects]
    data = pack_bytes(objs)
    pf = receive_pack(io.BytesIO(data), str(tmp_path))
    assert pf.count == len(objs)
    assert os.path.basename(pf.path) == f"pack-{data[-32:].hex()}.pack"
    assert open(pf.path, "rb").read() == data
    for kind, oid, body in history.objects:
        assert pf.has(oid) and oid in pf
        assert pf.get(oid) == (kind, body)
        assert pf.size(oid) == len(body)
        assert pf.kind(oid) == kind
    missing = O.object_id(O.BLOB, b"not there")
    assert pf.get(missing) is None and not pf.has(missing) and pf.kind(missing) is None
    assert list(pf.ids()) == sorted(o for _, o, _ in history.objects)
    assert dict(pf.kinds()) == {o: k for k, o, _ in history.objects}
    got = list(pf.iter_objects())
    assert sorted(got) == sorted(history.objects)
    meta = list(pf.iter_objects((O.TREE, O.COMMIT)))
    assert {k for k, _, _ in meta} == {O.TREE, O.COMMIT}
    assert len(meta) == 300
    assert pf.verify() == len(objs)
    # Receiving the same pack again is a no-op that returns the same pack.
    again = receive_pack(io.BytesIO(data), str(tmp_path))
    assert again.path == pf.path and len(listing(tmp_path)) == 2


def test_lookups_switch_to_a_dict(tmp_path: Path, history) -> None:  # type: ignore[no-untyped-def]
    pf = write_pack_file(str(tmp_path), [(k, b) for k, _, b in history.objects])
    for _ in range(3):
        for kind, oid, body in history.objects:
            assert pf.get(oid) == (kind, body)
    assert pf._dict is not None


@pytest.mark.parametrize("cut", [0, 5, 12, 100, 5000, -33, -1])
def test_failed_receive_leaves_nothing(tmp_path: Path, history, cut: int) -> None:  # type: ignore[no-untyped-def]
    data = pack_bytes([(k, b) for k, _, b in history.objects])
    with pytest.raises(PackError):
        receive_pack(io.BytesIO(data[:cut]), str(tmp_path))
    assert listing(tmp_path) == []


def test_receive_refuses_corruption_and_limits(tmp_path: Path, history) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(pack_bytes([(k, b) for k, _, b in history.objects]))
    data[len(data) // 2] ^= 0x40
    with pytest.raises(PackError):
        receive_pack(io.BytesIO(bytes(data)), str(tmp_path))
    good = pack_bytes([(k, b) for k, _, b in history.objects])
    with pytest.raises(PackError) as info:
        receive_pack(io.BytesIO(good), str(tmp_path), PackLimits(max_objects=10))
    assert info.value.code == "too_large"
    assert listing(tmp_path) == []


def test_stream_errors_propagate_and_clean_up(tmp_path: Path) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise ConnectionResetError("peer went away")

    with pytest.raises(ConnectionResetError):
        receive_pack(Broken(), str(tmp_path))  # type: ignore[arg-type]
    assert listing(tmp_path) == []


def test_write_pack_file_groups_trees_by_path(tmp_path: Path, history) -> None:  # type: ignore[no-untyped-def]
    objs = [(k, b) for k, _, b in history.objects]
    laid = layout_for_pack(objs)
    kinds = [k for k, _, _ in laid]
    assert kinds == sorted(kinds, key=lambda k: {O.COMMIT: 0, O.TREE: 1, O.BLOB: 2}[k])
    # The root trees come first (newest first), then part00's versions, part01's, ...
    trees = [(b, oid) for k, b, oid in laid if k == O.TREE]
    roots = [t for t in trees if O.decode_tree(t[0])[0].mode == O.MODE_TREE]
    assert trees[: len(roots)] == roots
    assert O.object_id(O.TREE, roots[0][0]) == O.commit_refs(history.objects[-1][2])[0]
    pf = write_pack_file(str(tmp_path), objs)
    assert sorted(pf.iter_objects()) == sorted(history.objects)
    pf.verify()
    # A generator is written in the order given (streamed, no layout).
    d2 = tmp_path / "gen"
    d2.mkdir()
    pf2 = write_pack_file(str(d2), (o for o in objs))
    assert pf2.count == len(objs)


def test_pack_set(tmp_path: Path) -> None:
    a = [(O.BLOB, b"a%d" % i) for i in range(10)]
    b = [(O.BLOB, b"b%d" % i) for i in range(10)] + [a[0]]
    ps = PackSet(str(tmp_path))
    assert ps.packs == [] and ps.get(O.object_id(*a[0])) is None
    write_pack_file(str(tmp_path), a)
    assert not ps.has(O.object_id(*a[1]))
    ps.refresh()
    assert ps.has(O.object_id(*a[1]))
    write_pack_file(str(tmp_path), b)
    ps.refresh()
    assert len(ps.packs) == 2
    for k, body in a + b:
        oid = O.object_id(k, body)
        assert ps.get(oid) == (k, body)
        assert ps.size(oid) == len(body) and ps.kind(oid) == k
    assert len(set(ps.ids())) == 20
    # Temporary files of an interrupted receive are ignored.
    (tmp_path / ".tmp-pack-x.pack").write_bytes(b"junk")
    ps.refresh()
    assert len(ps.packs) == 2


def test_corrupt_index_is_refused(tmp_path: Path) -> None:
    pf = write_pack_file(str(tmp_path), [(O.BLOB, b"x")])
    os.chmod(pf.idx_path, 0o644)
    raw = bytearray(open(pf.idx_path, "rb").read())
    raw[50] ^= 1
    open(pf.idx_path, "wb").write(bytes(raw))
    with pytest.raises(PackError):
        PackFile(pf.path)


def test_verify_detects_a_damaged_pack_at_rest(tmp_path: Path) -> None:
    rng = random.Random(9)
    pf = write_pack_file(str(tmp_path), [(O.BLOB, rng.randbytes(5000)) for _ in range(5)])
    os.chmod(pf.path, 0o644)
    raw = bytearray(open(pf.path, "rb").read())
    raw[P.HEADER_LEN + P.BLOCK_HEADER_LEN + 100] ^= 1
    open(pf.path, "wb").write(bytes(raw))
    with pytest.raises(PackError):
        PackFile(pf.path).verify()


def test_concurrent_readers_and_writers(tmp_path: Path, history) -> None:  # type: ignore[no-untyped-def]
    """The hub reads one PackFile from many threads and encodes packs in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    objs = [(k, b) for k, _, b in history.objects]
    pf = write_pack_file(str(tmp_path), objs)
    expected = {oid: (k, b) for k, oid, b in history.objects}

    def read_all(seed: int) -> bool:
        items = list(expected.items())
        random.Random(seed).shuffle(items)
        return all(pf.get(oid) == v for oid, v in items)

    def encode(seed: int) -> bool:
        data = pack_bytes(objs)
        return len(list(P.read_pack(io.BytesIO(data)))) == len(objs)

    with ThreadPoolExecutor(8) as ex:
        assert all(ex.map(read_all, range(8)))
        assert all(ex.map(encode, range(4)))


def test_receiving_a_big_file_keeps_memory_flat(tmp_path: Path) -> None:
    import tracemalloc

    big = random.Random(4).randbytes(48 << 20)
    objs = [(O.BLOB, b"small"), (O.BLOB, big), (O.BLOB, b"small2")]
    data = pack_bytes(objs)
    tracemalloc.start()
    try:
        pf = receive_pack(_Chunks(data), str(tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak
    assert pf.get(O.object_id(O.BLOB, big)) == (O.BLOB, big)
    assert pf.verify() == 3
    # Corruption inside the big object, or a cut in it, is still refused with nothing left.
    for bad in (data[: len(data) // 2], _flip(data, len(data) // 2)):
        d = tmp_path / f"bad{len(bad)}"
        d.mkdir()
        with pytest.raises(PackError):
            receive_pack(_Chunks(bad), str(d))
        assert listing(d) == []


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 1
    return bytes(b)


class _Chunks(io.RawIOBase):
    """Serves bytes in 64 KiB reads without copying the whole input up front."""

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(n if n >= 0 else 1 << 16, 1 << 16)
        out = bytes(self.view[self.pos : self.pos + n])
        self.pos += len(out)
        return out


def test_salvage_keeps_the_complete_verified_blocks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A pack cut anywhere keeps exactly its complete blocks, every object re-verified; a
    flipped byte in a later block keeps the blocks before it; too little keeps nothing."""
    import random

    from muse.core.pack import codec as P
    from muse.core.pack.write import SALVAGE_MIN, salvage

    blobs = [(O.BLOB, random.Random(i).randbytes(200_000)) for i in range(60)]  # ~3 blocks
    whole = io.BytesIO()
    P.write_pack(whole, blobs)
    data = whole.getvalue()
    offsets = [b.offset for b in P.read_blocks(io.BytesIO(data))]
    assert len(offsets) >= 3
    dest = tmp_path / "packs"
    dest.mkdir()
    cut_at = offsets[2] + 1000  # inside the third block
    part = dest / ".tmp-pack-1-x.pack"
    part.write_bytes(data[:cut_at])
    pf = salvage(str(part), str(dest))
    assert pf is not None and not part.exists()
    kept = {oid for oid, _ in pf.kinds()}
    expect = {
        oid
        for b in P.read_blocks(io.BytesIO(data))
        if b.offset < offsets[2]
        for _, oid, _, _ in P.iter_records(b)
    }
    assert kept == expect and pf.verify() == len(expect)
    # damage in the second block: only the first is kept
    bad = bytearray(data)
    bad[offsets[1] + 500] ^= 1
    part.write_bytes(bytes(bad))
    pf2 = salvage(str(part), str(dest))
    assert pf2 is not None and pf2.count < len(expect)
    # less than SALVAGE_MIN complete: nothing kept, the file removed
    part.write_bytes(data[: min(offsets[1], SALVAGE_MIN) - 1])
    assert salvage(str(part), str(dest)) is None and not part.exists()


@pytest.mark.parametrize("size", [20_000, 6 << 20])  # hashed inline, and on the helper thread
def test_a_pack_bound_to_a_digest_is_checked_in_the_decoding_pass(
    tmp_path: Path, size: int
) -> None:
    """receive_pack(sha256=...) (a checksum-bound upload) takes the file's digest from the
    decoder's running hash fed the trailer: the right one is kept, any other refused with
    nothing left behind."""
    import hashlib

    rng = random.Random(size)
    data = pack_bytes([(O.BLOB, rng.randbytes(size // 4)) for _ in range(4)])
    good = hashlib.sha256(data).digest()
    reader = P.BlockReader(io.BytesIO(data))
    for _ in reader:
        pass
    assert reader.file_sha256 == good
    (tmp_path / "ok").mkdir()
    pf = receive_pack(io.BytesIO(data), str(tmp_path / "ok"), sha256=good)
    assert pf.count == 4
    bad = hashlib.sha256(data + b"x").digest()
    (tmp_path / "bad").mkdir()
    with pytest.raises(PackError) as e:
        receive_pack(io.BytesIO(data), str(tmp_path / "bad"), sha256=bad)
    assert e.value.code == "bad_pack" and "checksum" in str(e.value)
    assert listing(tmp_path / "bad") == []
