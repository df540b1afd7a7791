"""core/pack/gather: objects read in an order that is not the pack's, each block about once."""

from __future__ import annotations

import io
import random

from muse.core.objects import BLOB, object_id
from muse.core.pack.cache import BlockCache
from muse.core.pack.codec import read_pack
from muse.core.pack.gather import MIN_WASTED_BLOCKS, in_order, plan
from muse.core.pack.packset import PackList
from muse.core.pack.stream import write_pack_of
from muse.core.pack.write import write_pack_file


def _pack(tmp_path: object, n: int = 400) -> tuple[list[tuple[int, bytes]], dict[bytes, bytes]]:
    """A pack of n compressible blobs of ~200 KiB (five zstd blocks of 16 MiB), in written order."""
    rng = random.Random(7)
    words = [b"kick", b"snare", b"hat", b"bass", b"pad", b"lead", b"vox", b"fx"]
    text = b" ".join(rng.choice(words) for _ in range(300_000))
    bodies = [b"%d " % i + text[(i * 997) % 1_000_000 :][:200_000] for i in range(n)]
    write_pack_file(str(tmp_path), iter([(BLOB, b) for b in bodies]))
    ids = [object_id(BLOB, b) for b in bodies]
    return [(BLOB, i) for i in ids], dict(zip(ids, bodies, strict=True))


class Counting(BlockCache):
    """A block cache that counts the blocks decompressed into it."""

    def __init__(self, budget: int) -> None:
        super().__init__(budget)
        self.puts = 0

    def put(self, key: tuple[int, int], data: bytes) -> None:
        self.puts += 1
        super().put(key, data)


def _reader(tmp_path: object, budget: int) -> tuple[PackList, Counting]:
    from pathlib import Path

    from muse.core.pack.file import PackFile

    cache = Counting(budget)
    (path,) = Path(str(tmp_path)).glob("*.pack")
    return PackList([PackFile(str(path), cache)], cache), cache


def test_a_jumbled_order_is_read_through_the_spool_each_block_once(tmp_path: object) -> None:
    objs, bodies = _pack(tmp_path)
    jumbled = [o for k in range(10) for o in objs[k::10]]  # every block visited ten times
    reader, cache = _reader(tmp_path, budget=16 << 20)  # holds one block
    assert plan(reader, jumbled) is not None
    got = [(oid, bytes(body)) for _k, oid, body in in_order(reader, jumbled) if body is not None]
    assert [oid for oid, _ in got] == [oid for _, oid in jumbled]
    assert all(bodies[oid] == body for oid, body in got)
    blocks = len({b for _, b in (reader.locate(o) or (None, -1) for _, o in objs)})
    # read directly: ten times each block; here: the first pass, the refills that gave the
    # jumble away, then once more each while spooling
    assert blocks >= 5 and cache.puts <= 2 * blocks + MIN_WASTED_BLOCKS + 1


def test_the_pack_order_and_a_large_cache_read_directly(tmp_path: object) -> None:
    objs, _ = _pack(tmp_path)
    reader, _ = _reader(tmp_path, budget=16 << 20)
    assert plan(reader, objs) is None  # sequential: nothing to gain
    big, _ = _reader(tmp_path, budget=1 << 30)
    assert plan(big, objs[::-1]) is None  # every block stays in the cache anyway


def test_a_pushed_pack_is_the_same_whichever_way_it_was_read(tmp_path: object) -> None:
    objs, bodies = _pack(tmp_path, n=120)
    jumbled = [o for k in range(6) for o in objs[k::6]]
    spooled, _ = _reader(tmp_path, budget=16 << 20)
    direct, _ = _reader(tmp_path, budget=1 << 30)
    a, b = io.BytesIO(), io.BytesIO()
    write_pack_of(a, spooled, jumbled)
    write_pack_of(b, direct, jumbled)
    assert a.getvalue() == b.getvalue()
    got = [oid for _k, oid, _b in read_pack(io.BytesIO(a.getvalue()))]
    assert sorted(got) == sorted(bodies)
