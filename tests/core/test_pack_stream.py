"""core/pack/stream: the pack of chosen objects, as chunks or a file, from any reader."""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wire"))
from wire_helpers import MemStore  # noqa: E402

from muse.core.pack.codec import read_pack  # noqa: E402
from muse.core.pack.stream import MissingObject, pack_chunks, write_pack_of  # noqa: E402
from muse.wire.negotiate import objects_to_send  # noqa: E402


def _history() -> tuple[MemStore, list[tuple[int, bytes]]]:
    s = MemStore()
    rng = random.Random(3)
    files: dict[str, bytes] = {}
    tip: list[bytes] = []
    for k in range(30):
        files[f"d{k % 4}/f{k}"] = rng.randbytes(rng.choice([10, 300_000, 600_000]))
        tip = [s.commit(dict(files), tip, 1000 + k)]
    return s, objects_to_send(s, tip, [])


def test_chunks_and_file_are_the_same_pack_and_hold_every_object() -> None:
    s, objs = _history()
    seen: list[int] = []
    chunks = list(pack_chunks(s, objs, lambda: seen.append(1), chunk=64 << 10))
    assert len(chunks) >= 3 and all(len(c) > 0 for c in chunks)  # one per 4 MiB block
    assert len(seen) == len(objs)
    out = io.BytesIO()
    size = write_pack_of(out, s, objs)
    assert out.getvalue() == b"".join(chunks) and size == len(out.getvalue())
    got = {oid: (kind, bytes(body)) for kind, oid, body in read_pack(io.BytesIO(out.getvalue()))}
    assert got == {oid: s.objects[oid] for _, oid in objs}


def test_a_missing_object_stops_the_pack_with_its_id() -> None:
    s, objs = _history()
    gone = objs[-1][1]
    del s.objects[gone]
    with pytest.raises(MissingObject) as info:
        list(pack_chunks(s, objs))
    assert info.value.oid == gone and gone.hex() in str(info.value)
    with pytest.raises(MissingObject):
        write_pack_of(io.BytesIO(), s, objs)
