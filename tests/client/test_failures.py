"""Failures in the middle: cut connections, a killed hub, concurrent pushers.

The invariants: a repository is never left pointing at missing objects, nothing already
pushed is lost, and running the command again succeeds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from .conftest import MUSE, Muse, tree_of, write_files


class CuttingProxy:
    """A TCP proxy to the hub that drops the first ``cuts`` connections after ``after`` bytes
    in one direction (``"down"``: hub -> client, ``"up"``: client -> hub)."""

    def __init__(
        self,
        target_port: int,
        after: int,
        cuts: int,
        direction: str = "down",
        trigger: Any = None,
        lose_answer_to: bytes | None = None,
        refuse: bytes | None = None,
    ) -> None:
        self.refuse = refuse  # answer 403 bad_signature to the next request holding this
        self.refusals = 0
        self.lose_answer_to = lose_answer_to  # drop the response to the first such request
        self.lost = 0
        self.trigger = trigger  # called once instead of cutting, when `after` bytes passed
        self.target = target_port
        self.after = after
        self.cuts = cuts
        self.direction = direction
        self.connections = 0
        self.cut = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            cut = self.cut < self.cuts
            if cut:
                self.cut += 1
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            limit_down = self.after if cut and self.direction == "down" else None
            limit_up = self.after if cut and self.direction == "up" else None
            state = {"drop": False}
            args_down = (u, c, limit_down, state, False)
            threading.Thread(target=self._pipe, args=args_down, daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(c, u, limit_up, state, True), daemon=True
            ).start()

    def _pipe(
        self,
        src: socket.socket,
        dst: socket.socket,
        limit: int | None,
        state: dict[str, bool],
        up: bool,
    ) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if up and self.refuse and self.refuse in data:
                    self.refuse = None
                    self.refusals += 1
                    body = b'{"error": "bad_signature", "message": "presigned URL expired"}'
                    src.sendall(  # to the client, instead of forwarding
                        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n%b" % (len(body), body)
                    )
                    break
                if up and self.lose_answer_to and not self.lost and self.lose_answer_to in data:
                    self.lost += 1
                    state["drop"] = True
                if not up and state["drop"]:
                    break  # the request was processed; its answer never reaches the client
                if limit is not None and sent + len(data) >= limit:
                    if self.trigger is not None:
                        trigger, self.trigger = self.trigger, None
                        trigger()  # e.g. kill the hub: the rest of the body never arrives
                        limit = None
                        continue
                    dst.sendall(data[: max(0, limit - sent)])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def url(self, owner: str, slug: str) -> str:
        return f"http://127.0.0.1:{self.port}/{owner}/{slug}"

    def close(self) -> None:
        self.sock.close()


def _big_repo(muse: Muse, root: Path, files: int = 40, size: int = 100_000) -> None:
    muse.run("init", str(root))
    write_files(root, {f"d{i % 4}/f{i}.bin": os.urandom(size) for i in range(files)})
    muse.run("commit", "-m", "big", cwd=root)


def _hub_repo(muse: Muse, hub: Any, slug: str) -> str:
    token = hub.create_user("alice")
    hub.create_repo("alice", slug)
    muse.login(hub.url, token)
    return hub.repo_url("alice", slug)


def test_fetch_retries_after_a_cut_connection(muse: Muse, tmp_path: Path, hub: Any) -> None:
    url = _hub_repo(muse, hub, "cut")
    src = tmp_path / "src"
    _big_repo(muse, src)
    muse.run("remote", "add", "origin", url, cwd=src)
    muse.run("push", cwd=src)
    for path in ("stream", "presign"):
        proxy = CuttingProxy(hub.port, after=600_000, cuts=1)
        try:
            dst = tmp_path / f"dst-{path}"
            out = muse.json("clone", "--path", path, proxy.url("alice", "cut"), str(dst))
            assert proxy.cut == 1 and out["objects"] > 0
            assert tree_of(dst) == tree_of(src)
            muse.run("fsck", cwd=dst)
        finally:
            proxy.close()


def test_push_retries_after_a_cut_upload(muse: Muse, tmp_path: Path, hub: Any) -> None:
    _hub_repo(muse, hub, "up")
    token = hub.create_token("alice")
    proxy = CuttingProxy(hub.port, after=700_000, cuts=1, direction="up")
    try:
        src = tmp_path / "src"
        _big_repo(muse, src)
        muse.run("remote", "add", "origin", proxy.url("alice", "up"), cwd=src)
        out = muse.json("push", "--path", "stream", cwd=src, env={"MUSE_TOKEN": token})
        assert proxy.cut == 1 and out["updated"] == ["refs/heads/main"]
    finally:
        proxy.close()
    dst = tmp_path / "dst"
    muse.run("clone", hub.repo_url("alice", "up"), str(dst))
    assert tree_of(dst) == tree_of(src)


def test_retried_push_whose_update_landed_reports_success(
    muse: Muse, tmp_path: Path, hub: Any
) -> None:
    _hub_repo(muse, hub, "lost")
    token = hub.create_token("alice")
    src = tmp_path / "src"
    _big_repo(muse, src, files=4, size=10_000)
    for path, request in (("stream", b"push/stream"), ("presign", b"push/commit")):
        write_files(src, {f"{path}.txt": path})
        muse.run("commit", "-m", path, cwd=src)
        proxy = CuttingProxy(hub.port, 0, 0, lose_answer_to=request)
        try:
            muse.run("remote", "add", path, proxy.url("alice", "lost"), cwd=src)
            out = muse.json(
                "push", "--path", path, path, "main", cwd=src, env={"MUSE_TOKEN": token}
            )
            assert proxy.lost == 1 and out["updated"] == ["refs/heads/main"]
        finally:
            proxy.close()
    dst = tmp_path / "dst"
    muse.run("clone", hub.repo_url("alice", "lost"), str(dst))
    assert tree_of(dst) == tree_of(src)


def test_expired_presigned_urls_are_renewed(
    muse: Muse, tmp_path: Path, start_hub: Any, free_port: Any
) -> None:
    port = free_port()
    proxy = CuttingProxy(port, 0, 0, refuse=b"/_storage/")
    public = {"MUSEHUB_PUBLIC_URL": f"http://127.0.0.1:{proxy.port}"}
    hub = start_hub(tmp_path, port=port, env=public)
    try:
        url = _hub_repo(muse, hub, "exp")
        src = tmp_path / "src"
        _big_repo(muse, src, files=8, size=50_000)
        muse.run("remote", "add", "origin", url, cwd=src)
        out = muse.json("push", "--path", "presign", cwd=src)
        assert proxy.refusals == 1 and out["path"] == "presign"
        proxy.refuse = b"/_storage/"
        dst = tmp_path / "dst"
        out = muse.json("clone", "--path", "presign", url, str(dst))
        assert proxy.refusals == 2 and out["path"] == "presign"
        assert tree_of(dst) == tree_of(src)
    finally:
        proxy.close()


def test_hub_killed_during_push_and_fetch(muse: Muse, tmp_path: Path, hub: Any) -> None:
    url = _hub_repo(muse, hub, "kill")
    token = hub.create_token("alice")
    src = tmp_path / "src"
    _big_repo(muse, src, files=60, size=100_000)
    env = {**muse.env, "MUSE_HTTP_RETRIES": "0", "MUSE_TOKEN": token}

    # the hub dies after 2 MB of a 6 MB push body have reached it
    proxy = CuttingProxy(hub.port, after=2_000_000, cuts=1, direction="up", trigger=hub.kill)
    muse.run("remote", "add", "origin", proxy.url("alice", "kill"), cwd=src)
    cp = muse.run("push", "--path", "stream", cwd=src, env=env, check=False)
    assert cp.returncode in (6, 7), cp.stderr
    assert proxy.trigger is None  # the kill happened mid-body
    hub.start()
    cp = muse.run("clone", url, str(tmp_path / "early"), check=False)
    assert cp.returncode == 0 and tree_of(tmp_path / "early") == {}  # nothing half-visible
    muse.run("push", cwd=src, env=env)  # the retry succeeds
    dst = tmp_path / "dst"
    muse.run("clone", url, str(dst))
    assert tree_of(dst) == tree_of(src)
    proxy.close()

    # a fetch interrupted by a crash leaves the refs where they were
    write_files(src, {f"new/n{i}.bin": os.urandom(100_000) for i in range(40)})
    muse.run("commit", "-m", "more", cwd=src)
    muse.run("push", cwd=src, env=env)
    proxy = CuttingProxy(hub.port, after=1_500_000, cuts=1, direction="down", trigger=hub.kill)
    muse.run("remote", "set-url", "origin", proxy.url("alice", "kill"), cwd=dst)
    before = muse.run("log", "--oneline", "-n", "1", "origin/main", cwd=dst).stdout
    cp = muse.run("fetch", "--path", "stream", cwd=dst, env=env, check=False)
    assert cp.returncode in (6, 7), cp.stderr
    assert proxy.trigger is None
    assert muse.run("log", "--oneline", "-n", "1", "origin/main", cwd=dst).stdout == before
    muse.run("fsck", cwd=dst)
    hub.start()
    muse.run("pull", cwd=dst, env=env)
    assert tree_of(dst) == tree_of(src)
    muse.run("fsck", cwd=dst)
    proxy.close()


def test_concurrent_pushers(muse: Muse, tmp_path: Path, hub: Any) -> None:
    url = _hub_repo(muse, hub, "race")
    base = tmp_path / "base"
    muse.run("init", str(base))
    write_files(base, {"base.txt": "base\n"})
    muse.run("commit", "-m", "base", cwd=base)
    muse.run("remote", "add", "origin", url, cwd=base)
    muse.run("push", cwd=base)
    clones = []
    for i in range(4):
        d = tmp_path / f"c{i}"
        muse.run("clone", url, str(d))
        write_files(d, {f"mine-{i}.txt": f"from {i}\n"})
        muse.run("commit", "-m", f"c{i}", cwd=d)
        clones.append(d)
    procs = [
        subprocess.Popen([*MUSE, "push"], cwd=d, env=muse.env, stderr=subprocess.PIPE)
        for d in clones
    ]
    codes = [p.wait(60) for p in procs]
    assert codes.count(0) == 1, codes
    assert all(c in (0, 5) for c in codes), codes
    # the losers pull (merge) and push again until everyone is in
    for d, code in zip(clones, codes, strict=True):
        if code != 0:
            for _ in range(5):
                muse.run("pull", cwd=d)
                if muse.run("push", cwd=d, check=False).returncode == 0:
                    break
    final = tmp_path / "final"
    muse.run("clone", url, str(final))
    files = tree_of(final)
    assert all(files[f"mine-{i}.txt"] == f"from {i}\n".encode() for i in range(4))
    muse.run("fsck", cwd=final)
