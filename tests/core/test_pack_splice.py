"""core/pack/splice: a pack made of whole blocks of a pack at rest is a valid pack of exactly
the objects of those blocks, its size and digest known as promised."""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import pytest

from muse.core import objects as O
from muse.core.pack.codec import PackError, read_pack
from muse.core.pack.file import PackFile
from muse.core.pack.packset import PackList
from muse.core.pack.splice import SplicedPack, whole_blocks
from muse.core.pack.write import write_pack_file

KiB = 1 << 10


def _pack(tmp_path: Path) -> tuple[PackFile, list[tuple[int, bytes]], dict[bytes, bytes]]:
    """A pack of 150 random 64 KiB blobs (raw blocks of about 4 MiB) and 40 small text blobs
    (a zstd block), as a commit of a large file writes them."""
    rng = random.Random(7)
    bodies = [rng.randbytes(64 * KiB) for _ in range(150)]
    bodies += [f"line {i}\n".encode() * 50 for i in range(40)]
    items = [(O.BLOB, b) for b in bodies]
    pf = write_pack_file(str(tmp_path), iter(items))
    by_id = {O.object_id(O.BLOB, b): b for b in bodies}
    objs = [(O.BLOB, O.object_id(O.BLOB, b)) for b in bodies]
    return pf, objs, by_id


def _decoded(data: bytes) -> dict[bytes, bytes]:
    return {oid: bytes(body) for _kind, oid, body in read_pack(io.BytesIO(data))}


def test_all_whole_blocks_make_the_same_objects_as_a_valid_pack(tmp_path: Path) -> None:
    pf, objs, by_id = _pack(tmp_path)
    spans, rest = whole_blocks(PackList([pf]), objs)
    assert rest == [] and len(spans) >= 3  # several raw blocks and the zstd one
    spliced = SplicedPack(spans)
    data = b"".join(spliced.chunks())
    assert len(data) == spliced.size == os.path.getsize(pf.path)  # the same blocks, in order
    assert spliced.count == len(objs)
    assert _decoded(data) == by_id  # read_pack checks every id and the checksum
    assert spliced.file_sha256 == hashlib.sha256(data).digest()
    assert SplicedPack(spans).digest() == spliced.file_sha256


def test_a_block_holding_an_object_not_asked_for_is_left_to_pack_anew(tmp_path: Path) -> None:
    pf, objs, by_id = _pack(tmp_path)
    skipped = objs[10][1]
    asked = [o for o in objs if o[1] != skipped] + [(O.BLOB, b"\x01" * 32)]  # and an unknown
    spans, rest = whole_blocks(PackList([pf]), asked)
    in_spans = {oid for s in spans for _, oid in s.objects}
    assert skipped not in in_spans
    assert in_spans | {oid for _, oid in rest} == {oid for _, oid in asked}
    assert not in_spans & {oid for _, oid in rest}
    neighbours = [oid for _, oid in rest if oid in by_id]
    assert neighbours, "the skipped object's block mates are packed anew"
    assert all(pf.block_offset(o) == pf.block_offset(skipped) for o in neighbours)
    data = b"".join(SplicedPack(spans).chunks())
    assert _decoded(data) == {oid: by_id[oid] for oid in in_spans}


def test_the_reader_gives_the_bytes_in_any_read_sizes_and_starts_afresh(tmp_path: Path) -> None:
    pf, objs, _ = _pack(tmp_path)
    spliced = SplicedPack(whole_blocks(PackList([pf]), objs)[0])
    whole = b"".join(spliced.chunks())
    for size in (1000, 1 << 20, 3 << 20):
        seen: list[int] = []
        r = spliced.reader(seen.append)
        parts = []
        while piece := r.read(size):
            assert len(piece) <= size
            parts.append(piece)
        r.close()
        assert b"".join(parts) == whole and sum(seen) == len(whole)


def test_a_truncated_pack_at_rest_stops_the_splice(tmp_path: Path) -> None:
    pf, objs, _ = _pack(tmp_path)
    spans = whole_blocks(PackList([pf]), objs)[0]
    size = os.path.getsize(pf.path)
    os.chmod(pf.path, 0o644)
    os.truncate(pf.path, size - 100_000)
    with pytest.raises(PackError, match="truncated"):
        b"".join(SplicedPack(spans).chunks())
