"""Two people on one hub repository: diverged histories, merges, conflicts, forced pushes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import Muse, tree_of, write_files


def _setup(muse: Muse, tmp_path: Path, hub: Any) -> tuple[Path, Path, str]:
    token = hub.create_user("alice")
    hub.create_repo("alice", "band")
    url = hub.repo_url("alice", "band")
    muse.login(hub.url, token)
    a = tmp_path / "a"
    muse.run("init", str(a))
    write_files(a, {"shared.txt": "line 1\nline 2\n", "a/only.txt": "a\n", "b/only.txt": "b\n"})
    muse.run("commit", "-m", "base", cwd=a)
    muse.run("remote", "add", "origin", url, cwd=a)
    muse.run("push", "-u", cwd=a)
    b = tmp_path / "b"
    muse.run("clone", url, str(b))
    return a, b, url


def test_diverged_push_is_refused_then_pull_merges(muse: Muse, tmp_path: Path, hub: Any) -> None:
    a, b, _ = _setup(muse, tmp_path, hub)
    write_files(a, {"a/only.txt": "a changed\n", "a/new.txt": "new in a\n"})
    muse.run("commit", "-m", "a2", cwd=a)
    muse.run("push", cwd=a)

    write_files(b, {"b/only.txt": "b changed\n"})
    muse.run("commit", "-m", "b2", cwd=b)
    cp = muse.run("push", cwd=b, check=False)
    assert cp.returncode == 5, cp.stderr
    assert "muse pull" in cp.stderr and "--force" in cp.stderr
    assert len(cp.stderr.strip().splitlines()) == 1

    out = muse.json("pull", cwd=b)
    assert out["result"] == "merged"
    files = tree_of(b)
    assert files["a/only.txt"] == b"a changed\n" and files["a/new.txt"] == b"new in a\n"
    assert files["b/only.txt"] == b"b changed\n"
    log = muse.run("log", "-n", "1", cwd=b).stdout
    assert "Merge:" in log
    muse.run("push", cwd=b)
    muse.run("pull", cwd=a)
    assert tree_of(a) == tree_of(b)
    muse.run("fsck", cwd=a)
    muse.run("fsck", cwd=b)


def test_conflict_is_marked_resolved_and_committed(muse: Muse, tmp_path: Path, hub: Any) -> None:
    a, b, _ = _setup(muse, tmp_path, hub)
    write_files(a, {"shared.txt": "line 1 from a\nline 2\n"})
    muse.run("commit", "-m", "a2", cwd=a)
    muse.run("push", cwd=a)
    write_files(b, {"shared.txt": "line 1 from b\nline 2\n", "b/only.txt": "b2\n"})
    muse.run("commit", "-m", "b2", cwd=b)

    cp = muse.run("pull", cwd=b, check=False)
    assert cp.returncode == 8, cp.stderr
    assert "shared.txt" in cp.stderr and "muse commit" in cp.stderr
    text = (b / "shared.txt").read_text()
    assert "<<<<<<< ours" in text and "line 1 from a" in text and "line 1 from b" in text
    assert (b / "b/only.txt").read_text() == "b2\n"
    # a second pull refuses while the merge is unresolved
    assert muse.run("pull", cwd=b, check=False).returncode == 8

    (b / "shared.txt").write_text("line 1 from both\nline 2\n")
    muse.run("resolve", "shared.txt", cwd=b)
    muse.run("commit", "-m", "merged", cwd=b)
    assert "Merge:" in muse.run("log", "-n", "1", cwd=b).stdout
    muse.run("push", cwd=b)
    muse.run("pull", cwd=a)
    assert tree_of(a) == tree_of(b)
    assert (a / "shared.txt").read_text() == "line 1 from both\nline 2\n"
    muse.run("fsck", cwd=a)


def test_merge_abort_restores_the_tree(muse: Muse, tmp_path: Path, hub: Any) -> None:
    a, b, _ = _setup(muse, tmp_path, hub)
    write_files(a, {"shared.txt": "from a\n", "a/only.txt": "a2\n"})
    muse.run("commit", "-m", "a2", cwd=a)
    muse.run("push", cwd=a)
    write_files(b, {"shared.txt": "from b\n"})
    muse.run("commit", "-m", "b2", cwd=b)
    before = tree_of(b)
    assert muse.run("pull", cwd=b, check=False).returncode == 8
    muse.run("merge", "--abort", cwd=b)
    assert tree_of(b) == before
    assert "nothing to commit" in muse.run("status", cwd=b).stdout
    # the fetched commits stay available for a later merge
    assert muse.run("merge", "origin/main", cwd=b, check=False).returncode == 8


def test_pull_never_loses_uncommitted_work(muse: Muse, tmp_path: Path, hub: Any) -> None:
    a, b, _ = _setup(muse, tmp_path, hub)
    write_files(a, {"shared.txt": "from a\n"})
    muse.run("commit", "-m", "a2", cwd=a)
    muse.run("push", cwd=a)
    (b / "shared.txt").write_text("my unsaved edit\n")
    cp = muse.run("pull", cwd=b, check=False)
    assert cp.returncode != 0 and "shared.txt" in cp.stderr
    assert (b / "shared.txt").read_text() == "my unsaved edit\n"
    # an unrelated uncommitted edit does not block a fast-forward, and survives it
    (b / "shared.txt").write_text("line 1\nline 2\n")
    (b / "b/only.txt").write_text("unrelated edit\n")
    out = muse.json("pull", cwd=b)
    assert out["result"] == "fast-forward"
    assert (b / "shared.txt").read_text() == "from a\n"
    assert (b / "b/only.txt").read_text() == "unrelated edit\n"


def test_force_push_overwrites(muse: Muse, tmp_path: Path, hub: Any) -> None:
    a, b, url = _setup(muse, tmp_path, hub)
    write_files(a, {"a/only.txt": "a2\n"})
    muse.run("commit", "-m", "a2", cwd=a)
    muse.run("push", cwd=a)
    write_files(b, {"b/only.txt": "rewritten\n"})
    muse.run("commit", "-m", "b2", cwd=b)
    assert muse.run("push", cwd=b, check=False).returncode == 5
    out = muse.json("push", "--force", cwd=b)
    assert out["updated"] == ["refs/heads/main"]
    c = tmp_path / "c"
    muse.run("clone", url, str(c))
    assert tree_of(c) == tree_of(b)
    # a: the hub's main is no longer an ancestor: pull merges the rewritten history
    out = muse.json("pull", cwd=a)
    assert out["result"] in ("merged", "fast-forward")


def test_push_all_branches_and_fetch_them(muse: Muse, tmp_path: Path, hub: Any) -> None:
    a, b, _ = _setup(muse, tmp_path, hub)
    muse.run("checkout", "-b", "feature", cwd=a)
    write_files(a, {"feature.txt": "f\n"})
    muse.run("commit", "-m", "feature", cwd=a)
    out = muse.json("push", "--all", cwd=a)
    assert "refs/heads/feature" in out["updated"]
    out = muse.json("fetch", cwd=b)
    assert "refs/remotes/origin/feature" in out["updated"]
    muse.run("checkout", "-b", "feature", "origin/feature", cwd=b)
    assert (b / "feature.txt").read_text() == "f\n"
    # up to date: nothing moves, nothing is sent
    out = muse.json("push", "--all", cwd=a)
    assert out["objects"] == 0 and out["updated"] == []
    assert json.loads(json.dumps(out))["path"] == "none"
