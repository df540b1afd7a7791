"""Retries that help, not hurt: one budget, the right host named, nothing re-sent in vain.

Real hubs, the real ``muse`` command, real refused connections, a real object store cut off
by a proxy on loopback, and a real full file system (a small tmpfs, mounted when the tests
run as root, as CI does).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fixtures.recovery import StallProxy, wait_until

from .conftest import Muse, tree_of, write_files


def _repo(muse: Muse, root: Path, files: int, size: int) -> None:
    muse.run("init", str(root))
    write_files(root, {f"d{i % 4}/f{i}.bin": os.urandom(size) for i in range(files)})
    muse.run("commit", "-m", "big", cwd=root)


def _count(hub: Any, line: str) -> int:
    return sum(1 for ln in hub.log().splitlines() if line in ln)


def test_refused_connection_fails_at_once(muse: Muse, tmp_path: Path, free_port: Any) -> None:
    """Nothing listens: no retry (a long backoff would make the command outlive its timeout)."""
    port = free_port()
    root = tmp_path / "r"
    _repo(muse, root, 1, 10)
    muse.run("remote", "add", "origin", f"http://127.0.0.1:{port}/a/b", cwd=root)
    slow = {"MUSE_HTTP_BACKOFF": "30", "MUSE_HTTP_RETRIES": "5"}
    for verb in (["fetch"], ["push"], ["clone", f"http://127.0.0.1:{port}/a/b", "c"]):
        cp = muse.run(*verb, cwd=root, env=slow, check=False, timeout=20)
        assert cp.returncode == 6, cp.stderr
        assert f"cannot reach 127.0.0.1:{port}: connection refused" in cp.stderr
        assert "is the hub running?" in cp.stderr


def test_unreachable_object_store_is_named(
    muse: Muse, tmp_path: Path, start_hub: Any, free_port: Any
) -> None:
    """The hub is up; the store its presigned URL names is not: say which host failed."""
    store_port = free_port()
    hub = start_hub(tmp_path, env={"MUSEHUB_PUBLIC_URL": f"http://127.0.0.1:{store_port}"})
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    muse.login(hub.url, token)
    root = tmp_path / "r"
    _repo(muse, root, 4, 10_000)
    muse.run("remote", "add", "origin", hub.repo_url("alice", "song"), cwd=root)
    cp = muse.run("push", "--path", "presign", cwd=root, check=False)
    assert cp.returncode == 6, cp.stderr
    assert f"cannot reach the object store 127.0.0.1:{store_port}: connection refused" in (
        cp.stderr
    )
    assert str(hub.port) not in cp.stderr and "is the hub running" not in cp.stderr
    assert _count(hub, "push/presign 200") == 1  # refused: no new presign, no retry


def test_presigned_commit_after_a_storage_failure_is_retried(
    muse: Muse, tmp_path: Path, start_hub: Any, seaweedfs: Any
) -> None:
    """push/commit meets the object store unreachable (after the PUT, after the hub claimed
    the upload): 503 storage_unavailable; the hub gives its claim back, the client commits
    the same upload again once the store is back, and nothing is uploaded twice."""
    store = StallProxy(seaweedfs.port)
    hub_proxy: StallProxy | None = None
    try:
        env = {
            "MUSEHUB_S3_ENDPOINT": f"http://127.0.0.1:{store.port}",  # the hub's way to it
            "MUSEHUB_S3_PUBLIC_ENDPOINT": seaweedfs.endpoint,  # the client's, direct
        }
        hub = start_hub(tmp_path, storage="s3", s3=seaweedfs, env=env)
        token = hub.create_user("alice")
        hub.create_repo("alice", "song")

        def on_request(data: bytes) -> None:
            if b"/push/commit" in data and store.cuts == 0:
                store.cut()  # the store goes away while the commit is handled

        def on_answer(data: bytes) -> None:
            if data.startswith(b"HTTP/1.1 503"):
                store.mend()  # and comes back while the client waits to retry

        hub_proxy = StallProxy(hub.port, on_request=on_request, on_answer=on_answer)
        root = tmp_path / "r"
        _repo(muse, root, 8, 50_000)
        muse.run("remote", "add", "origin", hub_proxy.url("alice", "song"), cwd=root)
        out = muse.json("push", "--path", "presign", cwd=root, env={"MUSE_TOKEN": token})
        assert out["updated"] == ["refs/heads/main"] and out["path"] == "presign"
        assert store.cuts == 1
        assert _count(hub, "push/commit 503") == 1 and _count(hub, "push/commit 200") == 1
        assert _count(hub, "push/presign 200") == 1  # the same upload, committed on retry
        assert "Traceback" not in hub.log()
        dst = tmp_path / "dst"
        muse.run("clone", hub.repo_url("alice", "song"), str(dst))
        assert tree_of(dst) == tree_of(root)
    finally:
        store.close()
        if hub_proxy is not None:
            hub_proxy.close()


def _mount_tmpfs(path: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    cp = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if cp.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {cp.stderr.decode().strip()}")


def test_full_disk_is_named_and_nothing_is_sent_again(
    muse: Muse, tmp_path: Path, start_hub: Any
) -> None:
    """The hub's cache (where pushes are verified) on a 4 MiB file system, a 12 MB push:
    507 insufficient_storage, said as such, no retry; the claim on the upload is given back;
    once there is room the same push goes through."""
    small = tmp_path / "small"
    _mount_tmpfs(small, "4m")
    try:
        hub = start_hub(tmp_path, env={"MUSEHUB_CACHE_DIR": str(small / "cache")})
        token = hub.create_user("alice")
        hub.create_repo("alice", "song")
        muse.login(hub.url, token)
        root = tmp_path / "r"
        _repo(muse, root, 12, 1_000_000)
        muse.run("remote", "add", "origin", hub.repo_url("alice", "song"), cwd=root)
        for path in ("presign", "stream"):
            cp = muse.run("push", "--path", path, cwd=root, check=False)
            assert cp.returncode == 7, cp.stderr
            assert "out of disk space (507 insufficient_storage)" in cp.stderr, cp.stderr
        assert _count(hub, "push/presign 200") == 1 and _count(hub, "PUT /_storage/") == 1
        # the client reads a 507 that comes before its body ends and hangs up at once: the
        # hub's access line for that request may be written a moment after muse exited
        wait_until(lambda: _count(hub, "push/stream 507") >= 1, 30, "the push/stream 507 line")
        assert _count(hub, "push/commit 507") == 1 and _count(hub, "push/stream 507") == 1
        assert "Traceback" not in hub.log() and not hub.unhandled_errors()
        with sqlite3.connect(hub.data_dir / "musehub.db") as db:
            states = [r[0] for r in db.execute("SELECT state FROM deferred_deletions")]
        assert states == ["awaiting_upload"]  # released, not left claimed
        subprocess.run(["mount", "-o", "remount,size=200m", str(small)], check=True)
        out = muse.json("push", "--path", "presign", cwd=root)
        assert out["updated"] == ["refs/heads/main"]
        dst = tmp_path / "dst"
        muse.run("clone", hub.repo_url("alice", "song"), str(dst))
        assert tree_of(dst) == tree_of(root)
        hub.stop()
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)
