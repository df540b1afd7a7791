"""receive_pack_file: a pack already in a local file is linked, verified, indexed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from muse.core import objects as O
from muse.core.pack.codec import PackError
from muse.core.pack.file import PackFile
from muse.core.pack.write import receive_pack_file, write_pack_file


def _src(tmp_path: Path) -> PackFile:
    d = tmp_path / "src"
    d.mkdir()
    objs = [(O.BLOB, b"blob %d" % i) for i in range(50)]
    objs.append((O.TREE, O.encode_tree([("f", O.MODE_FILE, O.object_id(O.BLOB, b"blob 1"))])))
    return write_pack_file(str(d), objs)


def test_linked_and_verified(tmp_path: Path) -> None:
    src = _src(tmp_path)
    dest = tmp_path / "q"
    dest.mkdir()
    seen: list[int] = []
    pf = receive_pack_file(src.path, str(dest), None, lambda k, o, b: seen.append(k))
    assert pf is not None
    assert pf.count == src.count and set(pf.ids()) == set(src.ids())
    assert os.stat(pf.path).st_ino == os.stat(src.path).st_ino  # not copied
    assert seen == [O.TREE]
    assert sorted(os.listdir(dest)) == sorted(
        [os.path.basename(pf.path), os.path.basename(pf.idx_path)]
    )


def test_corrupt_file_leaves_nothing(tmp_path: Path) -> None:
    src = _src(tmp_path)
    bad = tmp_path / "bad.pack"
    data = bytearray(Path(src.path).read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    dest = tmp_path / "q"
    dest.mkdir()
    with pytest.raises(PackError):
        receive_pack_file(str(bad), str(dest))
    assert os.listdir(dest) == []
