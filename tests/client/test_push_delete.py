"""Deleting a branch on the hub: `muse push --delete origin BRANCH` and `muse push origin
:BRANCH`, through the real command and a real hub; the default branch is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import Muse, write_files


def _hub_refs(hub: Any, token: str) -> dict[str, str]:
    _, body = hub.request("GET", "/alice/song/refs", token=token)
    return dict(body["refs"])


def test_push_delete_removes_a_branch(muse: Muse, tmp_path: Path, hub: Any) -> None:
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    url = hub.repo_url("alice", "song")
    muse.login(hub.url, token)
    a = tmp_path / "a"
    muse.run("init", str(a))
    write_files(a, {"f.txt": "one\n"})
    muse.run("commit", "-m", "one", cwd=a)
    muse.run("remote", "add", "origin", url, cwd=a)
    muse.run("push", "-u", "origin", "main", cwd=a)
    for name in ("topic", "other"):
        muse.run("branch", name, cwd=a)
        muse.run("push", "origin", name, cwd=a)
    assert {"refs/heads/topic", "refs/heads/other"} <= set(_hub_refs(hub, token))
    assert (a / ".muse/refs/remotes/origin/topic").exists()

    r = muse.run("push", "--delete", "origin", "topic", cwd=a)
    assert "[deleted]  topic" in r.stderr
    muse.run("push", "origin", ":other", cwd=a)  # git's spelling
    refs = _hub_refs(hub, token)
    assert "refs/heads/topic" not in refs and "refs/heads/other" not in refs
    assert "refs/heads/main" in refs
    # the remote-tracking refs went too; the local branches stay
    assert not (a / ".muse/refs/remotes/origin/topic").exists()
    assert not (a / ".muse/refs/remotes/origin/other").exists()
    assert (a / ".muse/refs/heads/topic").exists()

    b = tmp_path / "b"
    muse.run("clone", url, str(b))
    assert sorted(p.name for p in (b / ".muse/refs/remotes/origin").iterdir()) == ["main"]

    # the default branch is refused with a clear one-line message, and stays
    r = muse.run("push", "--delete", "origin", "main", cwd=a, check=False)
    assert r.returncode == 5, r.stderr
    assert "default branch" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "refs/heads/main" in _hub_refs(hub, token)

    gone = muse.run("push", "--delete", "origin", "topic", cwd=a, check=False)
    assert gone.returncode == 3 and "no branch 'topic' to delete" in gone.stderr
    bad = muse.run("push", "--delete", "origin", "a..b", cwd=a, check=False)
    assert bad.returncode == 2 and "invalid" in bad.stderr


def test_delete_needs_write_access(muse: Muse, tmp_path: Path, hub: Any) -> None:
    token = hub.create_user("alice")
    reader = hub.create_token("alice", "read")
    hub.create_repo("alice", "song")
    url = hub.repo_url("alice", "song")
    muse.login(hub.url, token)
    a = tmp_path / "a"
    muse.run("init", str(a))
    write_files(a, {"f.txt": "one\n"})
    muse.run("commit", "-m", "one", cwd=a)
    muse.run("remote", "add", "origin", url, cwd=a)
    muse.run("push", "origin", "main", cwd=a)
    muse.run("branch", "topic", cwd=a)
    muse.run("push", "origin", "topic", cwd=a)
    muse.login(hub.url, reader)
    r = muse.run("push", "--delete", "origin", "topic", cwd=a, check=False)
    assert r.returncode == 4, r.stderr
    assert "refs/heads/topic" in _hub_refs(hub, token)
