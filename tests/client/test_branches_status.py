"""Branches and upstreams, and status, as a git user reads them (issue 14), with a real hub."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .conftest import Muse, write_files


def _two_clones(muse: Muse, tmp_path: Path, hub: Any) -> tuple[Path, Path]:
    token = hub.create_user("alice")
    hub.create_repo("alice", "band")
    url = hub.repo_url("alice", "band")
    muse.login(hub.url, token)
    a = tmp_path / "a"
    muse.run("init", str(a))
    write_files(a, {"song.txt": "one\n"})
    muse.run("commit", "-m", "base", cwd=a)
    muse.run("remote", "add", "origin", url, cwd=a)
    muse.run("push", "-u", cwd=a)
    b = tmp_path / "b"
    muse.run("clone", url, str(b))
    return a, b


def test_ahead_behind_in_status_and_branch_vv(muse: Muse, tmp_path: Path, hub: Any) -> None:
    a, b = _two_clones(muse, tmp_path, hub)
    write_files(a, {"a.txt": "a\n"})
    muse.run("commit", "-m", "theirs", cwd=a)
    muse.run("push", cwd=a)
    for i in range(2):
        write_files(b, {f"b{i}.txt": "b\n"})
        muse.run("commit", "-m", f"ours {i}", cwd=b)
    out = muse.run("status", cwd=b).stdout
    assert "ahead of 'origin/main' by 2 commits" in out  # the fetch has not run yet
    muse.run("fetch", cwd=b)
    out = muse.run("status", cwd=b).stdout
    assert "have diverged" in out and "2 and 1 different commits" in out
    vv = muse.run("branch", "-vv", cwd=b).stdout
    assert "[origin/main: ahead 2, behind 1]" in vv
    st = json.loads(muse.run("status", "--json", cwd=b).stdout)
    assert (st["branch"], st["ahead"], st["behind"]) == ("main", 2, 1)
    br = json.loads(muse.run("branch", "--json", cwd=b).stdout)
    assert br["current"] == "main"
    assert "origin/main" in muse.run("branch", "-r", cwd=b).stdout
    assert "remotes/origin/main" in muse.run("branch", "-a", cwd=b).stdout


def test_checkout_of_a_remote_only_branch_tracks_it_and_rename_keeps_upstream(
    muse: Muse, tmp_path: Path, hub: Any
) -> None:
    a, b = _two_clones(muse, tmp_path, hub)
    muse.run("checkout", "-b", "topic", cwd=a)
    write_files(a, {"t.txt": "t\n"})
    muse.run("commit", "-m", "topic", cwd=a)
    muse.run("push", "-u", "origin", "topic", cwd=a)
    muse.run("fetch", cwd=b)
    cp = muse.run("checkout", "topic", cwd=b)
    assert "set up to track 'origin/topic'" in (cp.stdout + cp.stderr)
    assert (b / "t.txt").read_text() == "t\n"
    muse.run("branch", "-m", "topic", "renamed", cwd=b)
    vv = muse.run("branch", "-vv", cwd=b).stdout
    assert "renamed" in vv and "[origin/topic]" in vv
    muse.run("branch", "--unset-upstream", cwd=b)
    assert "[origin/topic]" not in muse.run("branch", "-vv", cwd=b).stdout
    muse.run("branch", "--set-upstream-to=origin/topic", cwd=b)
    assert "[origin/topic]" in muse.run("branch", "-vv", cwd=b).stdout


def test_status_porcelain_matches_git_for_a_small_case(
    muse: Muse, tmp_path: Path, hub: Any
) -> None:
    m, g = tmp_path / "m", tmp_path / "g"
    muse.run("init", str(m))
    subprocess.run(["git", "init", "-q", str(g)], check=True)
    for root in (m, g):
        write_files(root, {"keep.txt": "k\n", "edit.txt": "e\n", "gone.txt": "g\n"})
    muse.run("commit", "-m", "one", cwd=m)
    env = {
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@b",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@b",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    subprocess.run("git add -A && git commit -q -m one", cwd=g, shell=True, check=True, env=env)
    for root in (m, g):
        write_files(root, {"edit.txt": "e2\n", "new.txt": "n\n"})
        (root / "gone.txt").unlink()
    subprocess.run(["git", "add", "-A"], cwd=g, check=True, env=env)  # muse commits it all
    ours = muse.run("status", "--porcelain", cwd=m).stdout
    theirs = subprocess.run(
        ["git", "status", "--porcelain"], cwd=g, capture_output=True, text=True, env=env
    ).stdout
    assert ours == theirs
