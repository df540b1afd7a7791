"""A clone or a fetch killed half-way is completed by running the same command again.

Real processes and real SIGKILLs: ``muse clone`` (and ``muse fetch``) against a real hub,
through a proxy on loopback that holds the answer back after a few hundred KB, so the client
is killed while it is receiving (and, for the clone, a second time while it writes the
working tree). What is left says it is unfinished (status, fsck), and the same command
finishes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from fixtures.recovery import StallProxy, wait_until

from .conftest import MUSE, Muse, tree_of, write_files


def _publish(muse: Muse, hub: Any, root: Path, files: int, size: int) -> str:
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    muse.login(hub.url, token)
    muse.run("init", str(root))
    write_files(root, {f"d{i % 8}/f{i:05d}.bin": os.urandom(size) for i in range(files)})
    muse.run("commit", "-m", "first", cwd=root)
    muse.run("remote", "add", "origin", hub.repo_url("alice", "song"), cwd=root)
    muse.run("push", cwd=root)
    return hub.repo_url("alice", "song")


def _tmp_packs(repo: Path) -> list[str]:
    d = repo / ".muse" / "packs"
    return [n for n in os.listdir(d) if n.startswith(".tmp-pack")] if d.is_dir() else []


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


def test_clone_killed_while_receiving_and_while_writing_files(
    muse: Muse, tmp_path: Path, hub: Any
) -> None:
    src = tmp_path / "src"
    _publish(muse, hub, src, files=3000, size=600)
    proxy = StallProxy(hub.port, stall_after=300_000)
    url = proxy.url("alice", "song")
    dst = tmp_path / "dst"
    try:
        # 1. killed while the pack arrives
        cmd = [*MUSE, "clone", "--path", "stream", url, str(dst)]
        proc = subprocess.Popen(cmd, env=muse.env, stderr=subprocess.DEVNULL)
        proxy.stalled.wait(30)
        wait_until(lambda: _tmp_packs(dst), what="a pack being received")
        _kill(proc)
        assert (dst / ".muse" / "CLONE_IN_PROGRESS").exists()
        st = muse.run("status", cwd=dst)
        assert "did not finish" in st.stderr and f"muse clone {url}" in st.stderr, st.stderr
        fs = muse.run("fsck", cwd=dst, check=False)
        assert fs.returncode == 1 and "unfinished clone" in fs.stderr, fs.stderr
        # another URL into it is refused, with what to run
        other = muse.run("clone", hub.repo_url("alice", "song"), str(dst), check=False)
        assert other.returncode == 1 and f"unfinished clone of {url}" in other.stderr

        # 2. the same command again, killed while it writes the working tree
        proxy.release()
        proc = subprocess.Popen(cmd, env=muse.env, stderr=subprocess.DEVNULL)
        try:
            wait_until(
                lambda: (
                    proc.poll() is not None
                    or (dst / ".muse" / "CHECKOUT_IN_PROGRESS").exists()
                    and len(os.listdir(dst)) > 3
                ),
                what="files being written",
            )
        finally:
            if proc.poll() is None:
                _kill(proc)
        # 3. and once more: it completes
        muse.run(*cmd[len(MUSE) :])
    finally:
        proxy.close()
    assert tree_of(dst) == tree_of(src)
    assert not (dst / ".muse" / "CLONE_IN_PROGRESS").exists()
    assert _tmp_packs(dst) == []
    fs = muse.run("fsck", cwd=dst)
    assert "warning" not in fs.stderr
    st = muse.run("status", cwd=dst)
    assert "nothing to commit" in st.stdout and st.stderr == ""
    assert muse.run("log", "--oneline", cwd=dst).stdout.count("\n") == 1
    muse.run("pull", cwd=dst)  # upstream was set: a normal repository


def test_fetch_killed_while_receiving_is_rerun_cleanly(
    muse: Muse, tmp_path: Path, hub: Any
) -> None:
    src = tmp_path / "src"
    url = _publish(muse, hub, src, files=10, size=1000)
    dst = tmp_path / "dst"
    muse.run("clone", url, str(dst))
    write_files(src, {f"new/n{i}.bin": os.urandom(1000) for i in range(400)})
    muse.run("commit", "-m", "more", cwd=src)
    muse.run("push", cwd=src)
    before = muse.run("log", "--oneline", "-n", "1", "origin/main", cwd=dst).stdout
    proxy = StallProxy(hub.port, stall_after=100_000)
    try:
        muse.run("remote", "set-url", "origin", proxy.url("alice", "song"), cwd=dst)
        proc = subprocess.Popen(
            [*MUSE, "fetch", "--path", "stream"], cwd=dst, env=muse.env, stderr=subprocess.DEVNULL
        )
        proxy.stalled.wait(30)
        wait_until(lambda: _tmp_packs(dst), what="a pack being received")
        _kill(proc)
        assert muse.run("log", "--oneline", "-n", "1", "origin/main", cwd=dst).stdout == before
        fs = muse.run("fsck", cwd=dst)
        assert "interrupted fetch" in fs.stderr  # named, not an error
        proxy.release()
        muse.run("fetch", "--path", "stream", cwd=dst)  # the same command again
    finally:
        proxy.close()
    assert _tmp_packs(dst) == []  # swept by the rerun
    assert "more" in muse.run("log", "--oneline", "-n", "1", "origin/main", cwd=dst).stdout
    fs = muse.run("fsck", cwd=dst)
    assert "warning" not in fs.stderr
    muse.run("merge", "origin/main", cwd=dst)
    assert tree_of(dst) == tree_of(src)
