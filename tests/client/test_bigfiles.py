"""Large files as content-defined chunks, end to end between real processes (issue 10).

A file of 1 MiB or more is stored and moved as ~64 KiB chunks: it round-trips byte for byte
on both paths and both storages, and an edit, an insertion, an append or a copy moves only
the chunks the other side lacks (measured from the verbs' --json byte counts).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
from benchlib.proc import descendants, measured, peak_rss

from .conftest import Muse, tree_of

MiB = 1 << 20
PATHS = ["stream", "presign"]


def _data(n: int, seed: str) -> bytes:
    return random.Random(seed).randbytes(n)


def _same(a: Path, b: Path) -> None:
    assert tree_of(a) == tree_of(b)
    for rel in tree_of(a):
        assert (os.stat(a / rel).st_mode & 0o100) == (os.stat(b / rel).st_mode & 0o100), rel


def _setup(muse: Muse, tmp_path: Path, hub: Any) -> tuple[Path, str]:
    token = hub.create_user("alice")
    hub.create_repo("alice", "stems")
    url = hub.repo_url("alice", "stems")
    muse.login(hub.url, token)
    src = tmp_path / "src"
    muse.run("init", str(src))
    muse.run("remote", "add", "origin", url, cwd=src)
    return src, url


def _roundtrip(muse: Muse, tmp_path: Path, hub: Any, path: str) -> None:
    src, url = _setup(muse, tmp_path, hub)
    big = _data(12 * MiB, "big")
    (src / "stems").mkdir()
    (src / "stems" / "drums.wav").write_bytes(big)
    (src / "exactly-1MiB.bin").write_bytes(_data(MiB, "edge"))
    (src / "just-under.bin").write_bytes(_data(MiB - 1, "under"))
    (src / "run.sh").write_bytes(b"#!/bin/sh\n" + _data(2 * MiB, "exec"))
    os.chmod(src / "run.sh", 0o755)
    (src / "zeros.raw").write_bytes(bytes(8 * MiB))  # one repeated chunk
    muse.run("commit", "-m", "stems", cwd=src)
    status = muse.run("status", cwd=src).stdout
    assert "nothing to commit" in status
    muse.run("fsck", cwd=src)
    out = muse.json("push", "--path", path, "-u", "origin", "main", cwd=src)
    assert out["path"] == path
    # 16 MiB of random bytes; zeros.raw is one 256 KiB chunk repeated and costs nothing
    assert 16 * MiB < out["bytes"] < 17 * MiB, out

    dst = tmp_path / "dst"
    muse.json("clone", "--path", path, url, str(dst))
    _same(src, dst)
    muse.run("fsck", cwd=dst)
    assert "nothing to commit" in muse.run("status", cwd=dst).stdout

    # one byte changed in the middle: push and pull move a chunk or two, not 12 MiB
    edited = bytearray(big)
    edited[len(big) // 2] ^= 0xFF
    (src / "stems" / "drums.wav").write_bytes(bytes(edited))
    muse.run("commit", "-m", "one byte", cwd=src)
    out = muse.json("push", "--path", path, cwd=src)
    assert out["bytes"] < 2 * MiB, out
    # 12 MiB is ~150 chunks: one or two changed, the rest known to the hub
    assert 1 <= out["chunks_sent"] <= 3 and out["chunks_deduplicated"] > 100, out
    out = muse.json("pull", "--path", path, cwd=dst)
    assert out["result"] == "fast-forward" and out["bytes"] < 2 * MiB, out
    _same(src, dst)

    # 1 MiB inserted in the middle, 3 MiB appended, and a copy under another name elsewhere
    ins = bytes(edited[: len(big) // 3]) + _data(MiB, "ins") + bytes(edited[len(big) // 3 :])
    (src / "stems" / "drums.wav").write_bytes(ins + _data(3 * MiB, "tail"))
    (src / "copies").mkdir()
    (src / "copies" / "drums-copy.wav").write_bytes(bytes(edited))
    muse.run("commit", "-m", "insert, append, copy", cwd=src)
    out = muse.json("push", "--path", path, cwd=src)
    assert out["bytes"] < 4 * MiB + 2 * MiB, out
    assert out["chunks_deduplicated"] > 250, out  # the copy costs none of its chunks
    out = muse.json("fetch", "--path", path, cwd=dst)
    assert out["bytes"] < 4 * MiB + 2 * MiB, out
    muse.run("pull", cwd=dst)
    _same(src, dst)
    muse.run("fsck", cwd=dst)

    # checkout of the older commit restores the older bytes
    muse.run("checkout", "HEAD~2", cwd=dst)
    assert (dst / "stems" / "drums.wav").read_bytes() == big
    assert not (dst / "copies").exists()


@pytest.mark.parametrize("path", PATHS)
def test_big_files_local(muse: Muse, tmp_path: Path, hub: Any, path: str) -> None:
    _roundtrip(muse, tmp_path, hub, path)


@pytest.mark.parametrize("path", PATHS)
def test_big_files_seaweedfs(
    muse: Muse, tmp_path: Path, start_hub: Any, seaweedfs: Any, path: str
) -> None:
    hub = start_hub(tmp_path, storage="s3", s3=seaweedfs)
    _roundtrip(muse, tmp_path, hub, path)


def test_a_file_that_grows_past_the_threshold_changes_mode(muse: Muse, tmp_path: Path) -> None:
    root = tmp_path / "r"
    muse.run("init", str(root))
    (root / "f.bin").write_bytes(_data(1000, "s"))
    muse.run("commit", "-m", "small", cwd=root)
    (root / "f.bin").write_bytes(_data(3 * MiB, "l"))
    st = muse.run("status", cwd=root).stdout
    assert "modified:   f.bin" in st
    muse.run("commit", "-m", "large", cwd=root)
    (root / "f.bin").write_bytes(_data(10, "t"))
    muse.run("commit", "-m", "small again", cwd=root)
    muse.run("checkout", "HEAD~1", cwd=root)
    assert (root / "f.bin").read_bytes() == _data(3 * MiB, "l")
    muse.run("checkout", "main", cwd=root)
    assert (root / "f.bin").read_bytes() == _data(10, "t")
    muse.run("fsck", cwd=root)


def _sparse(path: Path, size: int, marks: list[int]) -> dict[int, bytes]:
    """A sparse file of ``size`` bytes with 64 KiB of random bytes at each mark."""
    written = {}
    with open(path, "wb") as f:
        f.truncate(size)
        for at in marks:
            data = _data(64 << 10, f"mark{at}")
            f.seek(at)
            f.write(data)
            written[at] = data
    return written


def _same_file(a: Path, b: Path) -> None:
    assert os.path.getsize(a) == os.path.getsize(b)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(8 * MiB), fb.read(8 * MiB)
            assert x == y
            if not x:
                return


def test_a_file_over_4_gib_round_trips(muse: Muse, tmp_path: Path, hub: Any) -> None:
    """4.5 GiB (sparse: mostly one repeated chunk of zeros, so the wire stays small) through
    commit, status, push, clone, an edit past 4 GiB, pull and checkout, byte for byte, with
    memory flat (the client never holds the file)."""
    size = (4 << 30) + (512 << 20)
    src, url = _setup(muse, tmp_path, hub)
    marks = [0, (2 << 30) - 100, (4 << 30) + 7, size - (64 << 10)]
    _sparse(src / "long.wav", size, marks)
    muse.run("commit", "-m", "4.5 GiB", cwd=src, timeout=600)
    assert "nothing to commit" in muse.run("status", cwd=src).stdout
    out = muse.json("push", "-u", "origin", "main", cwd=src, timeout=600)
    assert out["bytes"] < 8 * MiB, out
    dst = tmp_path / "dst"
    muse.json("clone", url, str(dst), timeout=600)
    _same_file(src / "long.wav", dst / "long.wav")
    with open(src / "long.wav", "r+b") as f:  # an edit beyond 4 GiB
        f.seek((4 << 30) + 100 * MiB)
        f.write(b"past four gibibytes")
    muse.run("commit", "-m", "edit", cwd=src, timeout=600)
    out = muse.json("push", "--path", "stream", cwd=src, timeout=600)
    assert out["bytes"] < MiB, out
    out = muse.json("pull", "--path", "presign", cwd=dst, timeout=600)
    assert out["bytes"] < MiB, out
    _same_file(src / "long.wav", dst / "long.wav")
    muse.run("fsck", cwd=dst, timeout=600)
    for f in (src / "long.wav", dst / "long.wav"):  # pytest keeps its last tmp dirs
        f.unlink()


def _peak_rss_of(muse: Muse, *args: str, cwd: Path) -> int:
    """Run muse; the peak RSS of that one process, in bytes (benchlib.proc.measured)."""
    from .conftest import MUSE

    code, _seconds, rss, _out, err = measured([*MUSE, *args], str(cwd), muse.env)
    assert code == 0, err
    return rss


@pytest.mark.parametrize("storage", ["local", "s3"])
@pytest.mark.parametrize("path", PATHS)
def test_memory_stays_flat_for_a_large_file(
    muse: Muse, tmp_path: Path, request: Any, path: str, storage: str
) -> None:
    """Commit, push, clone, edit and pull a 384 MiB file: no muse process and no hub process
    grows past 256 MiB (before chunking each held the file, twice for push and clone), on
    local storage and on S3 (SeaweedFS), where the hub streams what it stores and serves."""
    limit = 256 * MiB
    if storage == "s3":
        start_hub = request.getfixturevalue("start_hub")
        hub = start_hub(tmp_path, storage="s3", s3=request.getfixturevalue("seaweedfs"))
    else:
        hub = request.getfixturevalue("hub")
    src, url = _setup(muse, tmp_path, hub)
    with open(src / "take.wav", "wb") as f:
        rng = random.Random("flat")
        for _ in range(384):
            f.write(rng.randbytes(MiB))
    peaks = {"commit": _peak_rss_of(muse, "commit", "-m", "take", cwd=src)}
    peaks["push"] = _peak_rss_of(muse, "push", "--path", path, "-u", "origin", "main", cwd=src)
    peaks["clone"] = _peak_rss_of(muse, "clone", "--path", path, url, "dst", cwd=tmp_path)
    with open(src / "take.wav", "r+b") as f:
        f.seek(200 * MiB)
        f.write(b"edit")
    peaks["edit commit"] = _peak_rss_of(muse, "commit", "-m", "edit", cwd=src)
    peaks["edit push"] = _peak_rss_of(muse, "push", "--path", path, cwd=src)
    peaks["pull"] = _peak_rss_of(muse, "pull", "--path", path, cwd=tmp_path / "dst")
    peaks["hub"] = max(peak_rss(p) for p in descendants(hub.proc.pid))
    assert all(v < limit for v in peaks.values()), {k: v >> 20 for k, v in peaks.items()}
    for f in (src / "take.wav", tmp_path / "dst" / "take.wav"):
        f.unlink()
