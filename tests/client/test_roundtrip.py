"""Push, clone, change, pull and fetch between real processes, on both paths and storages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import Muse, tree_of, write_files

PATHS = ["stream", "presign"]


def _seed(muse: Muse, root: Path, n: int = 6) -> None:
    muse.run("init", str(root))
    write_files(
        root,
        {f"dir{i % 3}/f{i}.txt": f"file {i}\n" * (i + 1) for i in range(n)}
        | {"bin/blob.bin": os.urandom(70_000), "empty": b"", "top.md": "# top\n"},
    )
    (root / "bin" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "bin" / "run.sh", 0o755)
    muse.run("commit", "-m", "first", cwd=root)


def _same(a: Path, b: Path) -> None:
    assert tree_of(a) == tree_of(b)
    for rel in tree_of(a):
        assert (os.stat(a / rel).st_mode & 0o100) == (os.stat(b / rel).st_mode & 0o100), rel


def _roundtrip(muse: Muse, tmp_path: Path, hub: Any, path: str) -> None:
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    url = hub.repo_url("alice", "song")
    muse.login(hub.url, token)

    src = tmp_path / "src"
    _seed(muse, src)
    muse.run("remote", "add", "origin", url, cwd=src)
    out = muse.json("push", "--path", path, "-u", "origin", "main", cwd=src)
    assert out["verb"] == "push" and out["path"] == path and out["objects"] > 0

    dst = tmp_path / "dst"
    out = muse.json("clone", "--path", path, url, str(dst))
    assert out["path"] == path and out["objects"] > 0
    assert out["wire_seconds"] > 0 and out["restore_seconds"] > 0
    _same(src, dst)
    muse.run("fsck", cwd=dst)

    # change in the source, pull into the clone (fast-forward)
    write_files(src, {"dir0/f0.txt": "changed\n", "new/deep/x.txt": "x\n", "top.md": None})
    muse.run("commit", "-m", "second", cwd=src)
    muse.run("push", "--path", path, cwd=src)
    out = muse.json("pull", "--path", path, cwd=dst)
    assert out["result"] == "fast-forward" and out["path"] == path
    _same(src, dst)
    muse.run("fsck", cwd=dst)

    # fetch only moves the remote-tracking ref
    write_files(src, {"dir1/f1.txt": "third\n"})
    muse.run("commit", "-m", "third", cwd=src)
    muse.run("push", cwd=src)
    before = tree_of(dst)
    out = muse.json("fetch", "--path", path, cwd=dst)
    assert out["objects"] > 0
    assert tree_of(dst) == before
    log = muse.run("log", "--oneline", "-n", "1", "origin/main", cwd=dst).stdout
    assert "third" in log
    out = muse.json("pull", cwd=dst)
    assert out["result"] == "fast-forward"
    _same(src, dst)
    # nothing new: up to date without a transfer
    out = muse.json("pull", cwd=dst)
    assert out["result"] == "up-to-date" and out["objects"] == 0


@pytest.mark.parametrize("path", PATHS)
def test_roundtrip_local(muse: Muse, tmp_path: Path, hub: Any, path: str) -> None:
    _roundtrip(muse, tmp_path, hub, path)


@pytest.mark.parametrize("path", PATHS)
def test_roundtrip_seaweedfs(
    muse: Muse, tmp_path: Path, start_hub: Any, seaweedfs: Any, path: str
) -> None:
    hub = start_hub(tmp_path, storage="s3", s3=seaweedfs)
    _roundtrip(muse, tmp_path, hub, path)


@pytest.mark.parametrize("path", PATHS)
def test_history_with_a_revert_pushes_and_clones(
    muse: Muse, tmp_path: Path, hub: Any, path: str
) -> None:
    """Change x and y, change y, change y back: the last tree recurs under another parent;
    the push to an empty hub and the clone of it must both be complete."""
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    url = hub.repo_url("alice", "song")
    muse.login(hub.url, token)
    src = tmp_path / "src"
    muse.run("init", str(src))
    for n, (x, y) in enumerate([("x0", "y0"), ("x1", "y1"), ("x1", "y2"), ("x1", "y1")]):
        write_files(src, {"d/x.txt": x + "\n", "d/y.txt": y + "\n"})
        muse.run("commit", "-m", f"c{n}", cwd=src)
    muse.run("remote", "add", "origin", url, cwd=src)
    muse.run("push", "--path", path, "-u", "origin", "main", cwd=src)
    dst = tmp_path / "dst"
    muse.run("clone", "--path", path, url, str(dst))
    _same(src, dst)
    muse.run("fsck", cwd=dst)
    log = muse.run("log", "--oneline", cwd=dst).stdout
    assert [line.split(" ", 1)[1] for line in log.splitlines()] == ["c3", "c2", "c1", "c0"]
