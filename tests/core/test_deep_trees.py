"""A tree 2,000 levels deep (a path of 4,000 bytes: within what file systems allow) works end
to end: commit, status, push, clone, checkout back and forth — every walk is iterative, none
hits Python's recursion limit. A symlink loop in the working tree is just a link.

The `muse` command runs as a process against a real hub.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fixtures import MUSE, muse_env

DEPTH = 2000


def _muse(  # type: ignore[no-untyped-def]
    home: Path, *args: str, cwd: Path, stdin: str | None = None, check: bool = True
):
    env = muse_env(home)
    cp = subprocess.run(
        [*MUSE, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in cp.stderr and "RecursionError" not in cp.stderr, cp.stderr
    if check:
        assert cp.returncode == 0, f"muse {args}: {cp.stdout}\n{cp.stderr}"
    return cp


def _make_deep(root: Path, depth: int) -> Path:
    """depth nested directories named "d" (made with relative paths: no long path at once)."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, b"at the bottom\n")
        os.close(wfd)
    finally:
        os.close(fd)
    return root


def _read_deep(root: Path, depth: int) -> bytes:
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        rfd = os.open("leaf.txt", os.O_RDONLY, dir_fd=fd)
        data = os.read(rfd, 100)
        os.close(rfd)
        return data
    finally:
        os.close(fd)


@pytest.mark.timeout(240)
def test_a_tree_2000_levels_deep_commits_pushes_and_clones(start_hub, tmp_path: Path) -> None:
    hub = start_hub(tmp_path)
    token = hub.create_user("alice")
    hub.create_repo("alice", "deep")
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    _muse(home, "auth", "login", hub.url, "--token-stdin", cwd=tmp_path, stdin=token + "\n")
    _muse(home, "init", cwd=work)
    (work / "top.txt").write_text("top\n")
    _make_deep(work, DEPTH)
    os.symlink("loop", work / "loop")  # a link to itself: ELOOP if anything followed it
    _muse(home, "commit", "-m", "deep", cwd=work)
    assert _muse(home, "status", cwd=work).returncode == 0
    _muse(home, "remote", "add", "origin", hub.repo_url("alice", "deep"), cwd=work)
    _muse(home, "push", "-u", "origin", "main", cwd=work)

    clone = tmp_path / "clone"
    _muse(home, "clone", hub.repo_url("alice", "deep"), str(clone), cwd=tmp_path)
    assert _read_deep(clone, DEPTH) == b"at the bottom\n"
    assert os.readlink(clone / "loop") == "loop"

    # a second commit that removes the deep tree, and checkouts both ways
    (clone / "top.txt").write_text("changed\n")
    _muse(home, "commit", "-m", "top", cwd=clone)
    _muse(home, "branch", "shallow", cwd=clone)
    _muse(home, "checkout", "shallow", cwd=clone)
    subprocess.run(["rm", "-rf", str(clone / "d")], check=True)
    _muse(home, "commit", "-m", "no more depth", cwd=clone)
    _muse(home, "checkout", "main", cwd=clone)
    assert _read_deep(clone, DEPTH) == b"at the bottom\n"
    _muse(home, "checkout", "shallow", cwd=clone)
    assert not (clone / "d").exists()
    _muse(home, "push", "origin", "shallow", cwd=clone)
    # (pytest's own clean-up recurses: leave it nothing deep)
    subprocess.run(["rm", "-rf", str(work), str(clone)], check=True)


def test_a_tree_deeper_than_paths_may_be_is_refused_with_a_message(tmp_path: Path) -> None:
    """2,100 levels: a path of 4,200 bytes, more than file systems allow. Checkout refuses it
    up front, with a message (the hub refuses it at push: tests/hub/test_bounds_paths.py)."""
    from muse.core import objects as O
    from muse.core.checkout import UnsafePath, checkout_tree
    from muse.core.repo import Repository

    repo = Repository.init(str(tmp_path / "w"))
    blob = repo.store.put(O.BLOB, b"x")
    tree = repo.store.put(O.TREE, O.encode_tree([("f", O.MODE_FILE, blob)]))
    for _ in range(2100):
        tree = repo.store.put(O.TREE, O.encode_tree([("d", O.MODE_TREE, tree)]))
    with pytest.raises(UnsafePath, match="a path of"):
        checkout_tree(repo, tree)
    assert os.listdir(repo.root) == [".muse"]
