"""Resumable transfers (issue 10): a clone or fetch whose connection is cut half way keeps
what it received and verified, and the same command run again moves only the rest.

A real proxy on loopback sits in front of the hub (its presigned URLs point at the proxy
too), counts every byte it forwards to the client and cuts every connection once half of
the file has gone through; the first run fails, the proxy mends, the same command is run
again. Both runs together must move at most 1.6x the file.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest
from fixtures.hub import free_port
from fixtures.recovery import StallProxy

from .conftest import Muse

MiB = 1 << 20
SIZE = 48 * MiB


def _serve_file(muse: Muse, tmp_path: Path, start_hub: Any) -> tuple[Any, CuttingProxy, bytes]:
    """A hub behind a CuttingProxy holding one commit with a SIZE-byte file."""
    port = free_port()
    proxy = CuttingProxy(port)
    hub = start_hub(
        tmp_path, port=port, env={"MUSEHUB_PUBLIC_URL": f"http://127.0.0.1:{proxy.port}"}
    )
    token = hub.create_user("alice")
    hub.create_repo("alice", "stems")
    muse.login(hub.url, token)
    muse.run("auth", "login", f"http://127.0.0.1:{proxy.port}", "--token-stdin", input=token + "\n")
    src = tmp_path / "src"
    muse.run("init", str(src))
    data = random.Random("resume").randbytes(SIZE)
    (src / "take.wav").write_bytes(data)
    (src / "notes.txt").write_text("take one\n")
    muse.run("commit", "-m", "take", cwd=src)
    muse.run("remote", "add", "origin", hub.repo_url("alice", "stems"), cwd=src)
    muse.run("push", "-u", "origin", "main", cwd=src)
    return hub, proxy, data


class CuttingProxy(StallProxy):
    """Forwards to the hub; cuts everything once ``cut_after`` bytes went through towards the
    client (or towards the hub, with ``cut_upload``)."""

    def __init__(self, target: int) -> None:
        self.down_bytes = 0
        self.up_bytes = 0
        self.cut_after: int | None = None
        self.cut_upload = False
        self._count_lock = threading.Lock()
        super().__init__(target, on_answer=self._down, on_request=self._up)

    def _down(self, data: bytes) -> None:
        with self._count_lock:
            self.down_bytes += len(data)
            if not self.cut_upload:
                self._maybe_cut(self.down_bytes)

    def _up(self, data: bytes) -> None:
        with self._count_lock:
            self.up_bytes += len(data)
            if self.cut_upload:
                self._maybe_cut(self.up_bytes)

    def _maybe_cut(self, moved: int) -> None:
        if self.cut_after is not None and moved >= self.cut_after:
            self.cut_after = None
            threading.Thread(target=self.cut, daemon=True).start()


def _push_source(
    muse: Muse, tmp_path: Path, start_hub: Any, proxy: StallProxy, size: int, seed: str
) -> tuple[Any, str, Path, bytes]:
    """A hub behind ``proxy`` (on the port it forwards to, its presigned URLs through the
    proxy too), the user logged in through the proxy, and a repository with one commit of a
    ``size``-byte file whose origin is the proxy: (hub, token, source, the file's bytes)."""
    hub = start_hub(
        tmp_path, port=proxy.target, env={"MUSEHUB_PUBLIC_URL": f"http://127.0.0.1:{proxy.port}"}
    )
    token = hub.create_user("alice")
    hub.create_repo("alice", "stems")
    muse.run("auth", "login", f"http://127.0.0.1:{proxy.port}", "--token-stdin", input=token + "\n")
    src = tmp_path / "src"
    muse.run("init", str(src))
    rng = random.Random(seed)  # in pieces: randbytes takes at most 2**31 bits at a time
    data = b"".join(rng.randbytes(min(64 * MiB, size - i)) for i in range(0, size, 64 * MiB))
    (src / "take.wav").write_bytes(data)
    muse.run("commit", "-m", "take", cwd=src)
    muse.run("remote", "add", "origin", proxy.url("alice", "stems"), cwd=src)
    return hub, token, src, data


@pytest.mark.parametrize("path", ["stream", "presign"])
def test_a_cut_clone_resumes(muse: Muse, tmp_path: Path, start_hub: Any, path: str) -> None:
    hub, proxy, data = _serve_file(muse, tmp_path, start_hub)
    try:
        url = proxy.url("alice", "stems")
        dst = tmp_path / "dst"
        proxy.cut_after = SIZE // 2
        first = muse.run("clone", "--path", path, url, str(dst), check=False)
        assert first.returncode != 0, first.stdout
        moved_first = proxy.down_bytes
        assert SIZE // 2 <= moved_first < SIZE, moved_first
        proxy.mend()
        second = muse.json("clone", "--path", path, url, str(dst))
        total = proxy.down_bytes
        assert second["bytes"] < SIZE * 0.6, second
        assert total <= 1.6 * SIZE, (moved_first, total)
        print(f"resume {path}: first {moved_first}, both {total}, file {SIZE}")
        assert (dst / "take.wav").read_bytes() == data
        muse.run("fsck", cwd=dst)
        assert "nothing to commit" in muse.run("status", cwd=dst).stdout
    finally:
        proxy.close()


def test_a_killed_clone_resumes(muse: Muse, tmp_path: Path, start_hub: Any) -> None:
    """SIGKILL half way through the pack: the rerun salvages the killed run's temporary pack
    (its complete blocks, re-verified) and asks only for the rest."""
    import os
    import signal
    import subprocess
    import time

    from .conftest import MUSE

    hub, proxy, data = _serve_file(muse, tmp_path, start_hub)
    try:
        url = proxy.url("alice", "stems")
        dst = tmp_path / "dst"
        p = subprocess.Popen(
            [*MUSE, "clone", "--path", "stream", url, str(dst)],
            env=muse.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while proxy.down_bytes < SIZE // 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        moved_first = proxy.down_bytes
        assert moved_first < SIZE
        second = muse.json("clone", "--path", "stream", url, str(dst))
        # what reached the disk before the kill is not asked for again
        assert second["bytes"] < SIZE * 0.9, (moved_first, second)
        assert proxy.down_bytes <= 1.6 * SIZE
        assert (dst / "take.wav").read_bytes() == data
        muse.run("fsck", cwd=dst)
    finally:
        proxy.close()


@pytest.mark.parametrize("path", ["stream", "presign"])
def test_a_cut_push_resumes(muse: Muse, tmp_path: Path, start_hub: Any, path: str) -> None:
    """A push of a large file goes in segments the hub keeps as they arrive: cut half way,
    the same command run again sends only what the hub does not have yet."""
    size = 160 * MiB
    proxy = CuttingProxy(free_port())
    try:
        hub, _token, src, data = _push_source(muse, tmp_path, start_hub, proxy, size, "push")
        proxy.cut_upload = True
        proxy.cut_after = size // 2
        first = muse.run("push", "--path", path, "-u", "origin", "main", cwd=src, check=False)
        assert first.returncode != 0, first.stdout
        # the segment packed ahead while the cut one was sent is not left behind either
        assert not list((src / ".muse" / "tmp").glob("push-*")), "temporary packs left"
        moved_first = proxy.up_bytes
        proxy.mend()
        second = muse.json("push", "--path", path, "-u", "origin", "main", cwd=src)
        total = proxy.up_bytes
        print(f"push resume {path}: first {moved_first}, both {total}, file {size}")
        assert second["bytes"] < 0.75 * size, second  # the first segment was not sent again
        assert second["chunks_deduplicated"] > 0, second
        assert total <= 1.6 * size, (moved_first, total)
        dst = tmp_path / "dst"
        muse.run("clone", hub.repo_url("alice", "stems"), str(dst))
        assert (dst / "take.wav").read_bytes() == data
        muse.run("fsck", cwd=dst)
    finally:
        proxy.close()


def test_a_push_cut_in_its_first_segment_leaves_no_packs(
    muse: Muse, tmp_path: Path, start_hub: Any
) -> None:
    """Cut while the first segment is uploaded (the second is being packed ahead by then):
    the push fails with nothing of either left in the repository, and a rerun lands it."""
    size = 160 * MiB
    proxy = CuttingProxy(free_port())
    try:
        hub, _token, src, data = _push_source(muse, tmp_path, start_hub, proxy, size, "cut-early")
        proxy.cut_upload = True
        proxy.cut_after = 24 * MiB
        first = muse.run("push", "--path", "presign", "origin", "main", cwd=src, check=False)
        assert first.returncode != 0, first.stdout
        assert not list((src / ".muse" / "tmp").glob("push-*")), "temporary packs left"
        proxy.mend()
        muse.run("push", "--path", "presign", "origin", "main", cwd=src)
        dst = tmp_path / "dst"
        muse.run("clone", hub.repo_url("alice", "stems"), str(dst))
        assert (dst / "take.wav").read_bytes() == data
    finally:
        proxy.close()


def test_a_segment_commit_that_fails_mid_pipeline_stops_the_push_cleanly(
    muse: Muse, tmp_path: Path, start_hub: Any
) -> None:
    """The first segment's commit (on the committer's own connection) fails while the next
    segments are uploaded: the push stops with an error before the fourth, leaves no
    temporary pack and moves no ref; run again, it lands."""
    size = 272 * MiB  # four segments of 64 MiB or a little more (whole blocks), and the rest
    failing = threading.Event()
    failing.set()
    commits_refused = [0]
    sent = [0]

    def refuse_commits(data: bytes) -> None:
        sent[0] += len(data)
        if failing.is_set() and b"/push/commit " in data:
            commits_refused[0] += 1
            raise ConnectionResetError("the test cuts every commit")  # this connection only

    proxy = StallProxy(free_port(), on_request=refuse_commits)
    try:
        hub, token, src, data = _push_source(muse, tmp_path, start_hub, proxy, size, "commit-fails")
        first = muse.run("push", "--path", "presign", "origin", "main", cwd=src, check=False)
        assert first.returncode != 0, first.stdout
        assert commits_refused[0] >= 1
        assert "cannot reach" in first.stderr, first.stderr
        # It stopped: the segment after the two that wait on the failing commit, and the rest
        # of the file, were never sent.
        assert sent[0] < 0.8 * size, sent
        assert "Traceback" not in first.stderr, first.stderr
        assert not list((src / ".muse" / "tmp").glob("push-*")), "temporary packs left"
        refs = hub.request("GET", "/alice/stems/refs", None, token)[1]["refs"]
        assert "refs/heads/main" not in refs  # no ref moved
        failing.clear()
        muse.run("push", "--path", "presign", "origin", "main", cwd=src)
        assert not list((src / ".muse" / "tmp").glob("push-*"))
        dst = tmp_path / "dst"
        muse.run("clone", hub.repo_url("alice", "stems"), str(dst))
        assert (dst / "take.wav").read_bytes() == data
        muse.run("fsck", cwd=dst)
    finally:
        proxy.close()
