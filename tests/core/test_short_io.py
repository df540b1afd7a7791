"""Short reads and writes are never taken for the end of a file.

Linux moves at most 0x7ffff000 bytes per read/write call; a single call taken for the whole
file once cut every file over 2 GiB to exactly that size at commit. Here the system calls
are made to return at most a few bytes each, so the same bug shows on small files: commit,
status, pack reads and checkout must all still move every byte.
"""

from __future__ import annotations

import os
import random

import pytest
from coretest_helpers import commit_all, write

from muse.core import fileio
from muse.core.checkout import checkout_tree
from muse.core.repo import Repository
from muse.core.worktree import status

CAP = 7  # bytes per system call


@pytest.fixture
def short_io(monkeypatch: pytest.MonkeyPatch) -> None:
    real_read, real_pread, real_write, real_readv = os.read, os.pread, os.write, os.readv

    def read(fd: int, n: int) -> bytes:
        return real_read(fd, min(n, CAP))

    def pread(fd: int, n: int, off: int) -> bytes:
        return real_pread(fd, min(n, CAP), off)

    def write(fd: int, data: bytes) -> int:
        return real_write(fd, memoryview(data)[:CAP])

    def readv(fd: int, bufs: list[memoryview]) -> int:
        return real_readv(fd, [bufs[0][:CAP]])

    monkeypatch.setattr(os, "read", read)
    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "readv", readv)


def test_fileio_loops_until_done(tmp_path, short_io) -> None:
    data = random.Random(1).randbytes(10_000)
    p = tmp_path / "f"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT)
    fileio.write_all(fd, data)
    os.close(fd)
    assert p.read_bytes() == data
    fd = os.open(p, os.O_RDONLY)
    try:
        for hint in (0, 5, len(data) - 1, len(data), len(data) + 100):
            os.lseek(fd, 0, os.SEEK_SET)
            assert fileio.read_all(fd, hint) == data
        assert fileio.pread_exact(fd, 5000, 100) == data[100:5100]
        assert fileio.pread_exact(fd, 5000, len(data) - 10) == data[-10:]  # the file ends
    finally:
        os.close(fd)


def test_huge_hint_reads_into_one_buffer(tmp_path) -> None:
    """The path taken for files over 2 GiB, exercised with a small file and a big hint."""
    data = b"abc" * 1000
    p = tmp_path / "f"
    p.write_bytes(data)
    fd = os.open(p, os.O_RDONLY)
    try:
        assert fileio._read_rest(fd, 10, into_one_buffer=True) == data
    finally:
        os.close(fd)


def test_commit_status_pack_and_checkout_move_every_byte(tmp_path, short_io) -> None:
    repo = Repository.init(str(tmp_path / "r"))
    rng = random.Random(2)
    files = {
        f"d{i % 3}/f{i}.bin": rng.randbytes(rng.choice([0, 1, 6, 7, 8, 4096, 70_000]))
        for i in range(40)
    }
    for rel, data in files.items():
        write(repo.root, rel, data)
    first = commit_all(repo)
    assert status(repo).clean
    # a second commit with many objects goes through a pack (pread on the way back)
    for i in range(200):
        write(repo.root, f"many/m{i}", rng.randbytes(100))
    second = commit_all(repo)
    checkout_tree(repo, repo.read_commit(first).tree)
    for rel, data in files.items():
        with open(os.path.join(repo.root, rel), "rb") as f:
            assert f.read() == data, rel
    assert not os.path.exists(os.path.join(repo.root, "many"))
    checkout_tree(repo, repo.read_commit(second).tree)
    assert len(os.listdir(os.path.join(repo.root, "many"))) == 200
    assert status(repo).clean
