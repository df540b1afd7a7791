"""A pull through a real hub is in the reflogs (HEAD, the branch, the remote-tracking branch),
so ``muse reset --hard HEAD@{1}`` undoes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import Muse, tree_of, write_files


def test_pull_is_logged_and_undone(muse: Muse, tmp_path: Path, hub: Any) -> None:
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    url = hub.repo_url("alice", "song")
    muse.login(hub.url, token)
    a, b = tmp_path / "a", tmp_path / "b"
    muse.run("init", str(a))
    write_files(a, {"verse.txt": "one\n"})
    muse.run("commit", "-m", "first", cwd=a)
    muse.run("remote", "add", "origin", url, cwd=a)
    muse.run("push", "-u", cwd=a)
    muse.run("clone", url, str(b))
    write_files(a, {"verse.txt": "two\n"})
    muse.run("commit", "-m", "second", cwd=a)
    muse.run("push", cwd=a)

    muse.run("pull", cwd=b)
    assert tree_of(b)["verse.txt"] == b"two\n"
    head = muse.run("reflog", cwd=b).stdout.splitlines()
    assert head[0].split(" ", 1)[1].startswith("HEAD@{0}: pull")
    tracking = muse.run("reflog", "show", "origin/main", cwd=b).stdout.splitlines()
    assert len(tracking) == 2 and tracking[0].startswith(head[0].split()[0])

    muse.run("reset", "--hard", "HEAD@{1}", cwd=b)
    assert tree_of(b)["verse.txt"] == b"one\n"
    assert "reset: moving to HEAD@{1}" in muse.run("reflog", "-n", "1", cwd=b).stdout
    muse.run("fsck", cwd=b)
