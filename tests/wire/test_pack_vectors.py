"""docs/wire.md §1.7: the documented test vectors decode, and the code re-encodes them."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from muse.core import objects as O
from muse.core.pack import codec as P
from muse.core.pack.codec import read_pack, write_pack

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire.md"


def vector(name: str) -> bytes:
    text = DOC.read_text()
    m = re.search(r"```hex " + name + r"\n(.*?)```", text, re.S)
    assert m, f"{name} not found in docs/wire.md"
    return bytes.fromhex("".join(m.group(1).split()))


def objects_of_vector_1() -> list[tuple[int, bytes]]:
    blob = b"hello muse\n"
    tree = O.encode_tree([("hello.txt", O.MODE_FILE, O.object_id(O.BLOB, blob))])
    sig = O.Signature("A U Thor", "author@example.invalid", 1704067200)
    commit = O.Commit(O.object_id(O.TREE, tree), (), sig, sig, "first commit\n").encode()
    return [(O.BLOB, blob), (O.TREE, tree), (O.COMMIT, commit)]


def test_vector_1_raw() -> None:
    data = vector("vector-1")
    assert len(data) == 451
    got = list(read_pack(io.BytesIO(data)))
    assert [(k, b) for k, _, b in got] == [objects_of_vector_1()[i] for i in (1, 2, 0)]
    assert [oid.hex()[:8] for _, oid, _ in got] == ["e340e672", "4349d896", "fc02ea6e"]
    out = io.BytesIO()
    checksum = write_pack(out, objects_of_vector_1(), compress=False)
    assert out.getvalue() == data
    assert checksum == data[-32:]


def test_vector_2_zstd() -> None:
    data = vector("vector-2")
    assert data[P.HEADER_LEN] == P.CODEC_ZSTD
    got = list(read_pack(io.BytesIO(data)))
    assert got == [(O.BLOB, O.object_id(O.BLOB, b"la " * 200), b"la " * 200)]
    if P._zstd().ZSTD_VERSION != (1, 5, 7):
        pytest.skip("compressed bytes are specified for zstd 1.5.7")
    out = io.BytesIO()
    write_pack(out, [(O.BLOB, b"la " * 200)])
    assert out.getvalue() == data
