"""Scanning, the stat cache, status, .museignore and snapshots of the working tree."""

from __future__ import annotations

import os

import pytest
from coretest_helpers import commit_all, write

from muse.core import ignore
from muse.core.index import load_index
from muse.core.objects import MODE_EXEC, MODE_FILE, MODE_LINK
from muse.core.repo import Repository
from muse.core.treediff import tree_reader, walk_tree
from muse.core.worktree import scan, snapshot, status


def listing(repo, tree):
    return {p: m for p, m, _ in walk_tree(tree_reader(repo.store), tree)}


@pytest.fixture
def repo(tmp_path):
    return Repository.init(str(tmp_path / "w"))


def test_snapshot_modes_symlinks_empty_dirs(repo):
    r = repo.root
    write(r, "a.txt", b"")
    write(r, "bin/run", b"#!/bin/sh\n", 0o755)
    write(r, "deep/" + "/".join(f"d{i}" for i in range(30)) + "/f", b"deep")
    os.makedirs(os.path.join(r, "empty/dir"))
    os.symlink("a.txt", os.path.join(r, "link"))
    os.symlink("/nonexistent/target", os.path.join(r, "dangling"))
    os.symlink("bin", os.path.join(r, "dirlink"))
    res, _ = snapshot(repo)
    got = listing(repo, res.tree)
    assert got["a.txt"] == MODE_FILE
    assert got["bin/run"] == MODE_EXEC
    assert got["link"] == MODE_LINK and got["dangling"] == MODE_LINK and got["dirlink"] == MODE_LINK
    assert not any(p.startswith("empty") for p in got)
    assert not any(p.startswith(".muse") for p in got)
    assert any(p.endswith("d29/f") for p in got)
    assert repo.store.has(res.tree)


def test_stat_cache_and_status(repo):
    r = repo.root
    for i in range(20):
        write(r, f"d{i % 3}/f{i}", str(i).encode())
    commit_all(repo)
    st = status(repo)
    assert st.clean
    # after the index is rewritten with no racy entries, nothing is re-read
    os.utime(os.path.join(repo.muse_dir, "index"))
    idx = load_index(repo.muse_dir)
    idx.racy_ns = 1 << 62
    res, _ = scan(repo, idx)
    assert res.hashed == 0
    write(r, "d0/f0", b"changed")
    write(r, "new/file", b"n")
    os.unlink(os.path.join(r, "d1/f1"))
    os.chmod(os.path.join(r, "d2/f2"), 0o755)
    st = status(repo)
    letters = {p: ("A" if o is None else "D" if n is None else "M") for p, o, n in st.changes}
    assert letters == {"d0/f0": "M", "new/file": "A", "d1/f1": "D", "d2/f2": "M"}


def test_same_size_same_mtime_change_is_seen(repo):
    """A racy entry (mtime not older than the index) is always re-hashed."""
    r = repo.root
    write(r, "f", b"aaaa")
    commit_all(repo)
    p = os.path.join(r, "f")
    st = os.stat(p)
    write(r, "f", b"bbbb")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    idx = load_index(repo.muse_dir)
    idx.racy_ns = st.st_mtime_ns  # the entry is racy: same tick as the index
    res, _ = scan(repo, idx)
    assert res.hashed == 1
    assert not status(repo).clean


def test_museignore(repo):
    r = repo.root
    write(r, ".museignore", b"*.log\nbuild/\n/top.txt\n!keep.log\ndocs/**/*.tmp\n# comment\n")
    for rel in (
        "a.log",
        "keep.log",
        "sub/b.log",
        "build/x",
        "sub/build/y",
        "top.txt",
        "sub/top.txt",
        "docs/a/b/c.tmp",
        "docs/c.tmp",
        "src/main.c",
    ):
        write(r, rel)
    write(r, "sub/.museignore", b"local.txt\n")
    write(r, "sub/local.txt")
    write(r, "local.txt")
    res, _ = snapshot(repo)
    got = set(listing(repo, res.tree))
    assert got == {
        ".museignore",
        "keep.log",
        "sub/top.txt",
        "src/main.c",
        "sub/.museignore",
        "local.txt",
    }


@pytest.mark.parametrize(
    "pattern,path,is_dir,expected",
    [
        ("*.o", "a/b/c.o", False, True),
        ("/a.o", "x/a.o", False, False),
        ("a/**/b", "a/x/y/b", False, True),
        ("a/**/b", "a/b", False, True),
        ("**/foo", "x/foo", True, True),
        ("foo/**", "foo/x/y", False, True),
        ("f?o", "fxo", False, True),
        ("[ab].c", "b.c", False, True),
        ("[!ab].c", "b.c", False, False),
        ("dir/", "dir", False, False),
        ("dir/", "dir", True, True),
        ("\\!x", "!x", False, True),
    ],
)
def test_ignore_patterns(pattern, path, is_dir, expected):
    rules = ignore.parse(pattern)
    assert ignore.is_ignored(rules, path, path.rsplit("/", 1)[-1], is_dir) is expected


def test_dot_muse_never_tracked_in_any_case(repo):
    r = repo.root
    write(r, "sub/.MUSE/x")
    write(r, "ok")
    res, _ = snapshot(repo)
    assert set(listing(repo, res.tree)) == {"ok"}
    assert "sub/.MUSE" in res.skipped
