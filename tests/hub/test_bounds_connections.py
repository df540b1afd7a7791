"""Connection bounds (musehub.server): a hub under a 1,024 file-descriptor limit keeps
serving a normal client — health checks and a real `muse push` — while another address
holds 3,000 idle sockets, a slowloris client sends its headers a byte at a time and a
presigned PUT stalls mid-body; and the attacker's connections are closed by the timeouts.

Everything is real: a `musehub serve` process (RLIMIT_NOFILE 1,024), sockets over loopback
from other loopback addresses (127.0.0.2-4: the per-client limit counts by address), the
`muse` command as a process. Every wait is bounded.
"""

from __future__ import annotations

import resource
import selectors
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fixtures import MUSE, muse_env
from proto_util import HubClient

TIMEOUT_S = 3  # header and body-idle timeouts of the hub under test
PER_CLIENT = 64
IDLE_SOCKETS = 3000
SLOWLORIS = 20


def _muse(home: Path, *args: str, cwd: Path, stdin: str | None = None) -> str:
    env = muse_env(home)
    cp = subprocess.run(
        [*MUSE, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cp.returncode == 0, f"muse {args}: {cp.stdout}\n{cp.stderr}"
    return cp.stdout


def _connect(src: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    return s


def _wait_closed(socks: list[socket.socket], deadline: float) -> tuple[int, list[bytes]]:
    """Read every socket until the hub closes it or the deadline passes; returns how many
    are still open and what the closed ones received first."""
    sel = selectors.DefaultSelector()
    got: dict[socket.socket, bytes] = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    open_ = set(socks)
    while open_ and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                data = s.recv(65536)
            except (ConnectionResetError, BlockingIOError, OSError):
                data = b""
            if data:
                got[s] = got.get(s, b"") + data
                continue
            sel.unregister(s)
            open_.discard(s)
    sel.close()
    return len(open_), [got.get(s, b"") for s in socks if s not in open_]


@pytest.fixture
def raise_own_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = IDLE_SOCKETS + SLOWLORIS + 500
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"this test needs {need} file descriptors (hard limit {hard})")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_normal_client_is_served_throughout_an_attack(
    start_hub, tmp_path: Path, raise_own_fd_limit: None
) -> None:
    hub = start_hub(
        tmp_path,
        nofile=1024,
        env={
            "MUSEHUB_HEADER_TIMEOUT_S": str(TIMEOUT_S),
            "MUSEHUB_BODY_IDLE_TIMEOUT_S": str(TIMEOUT_S),
            "MUSEHUB_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT),
        },
    )
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    home, work = tmp_path / "home", tmp_path / "song"
    work.mkdir()
    _muse(home, "auth", "login", hub.url, "--token-stdin", cwd=tmp_path, stdin=token + "\n")
    _muse(home, "init", cwd=work)
    _muse(home, "remote", "add", "origin", hub.repo_url("alice", "song"), cwd=work)

    # a presigned PUT that will stall after 10 of its 1,000 bytes
    presign = HubClient(hub.url, "alice", "song", token).post_json(
        "push/presign", {"size": 1000, "objects": 0}
    )
    assert presign.status == 200, presign.body
    url = presign.json()["url"]
    path = url.split(str(hub.port), 1)[1]

    attack: list[socket.socket] = []
    try:
        idle = [_connect("127.0.0.2", hub.port) for _ in range(IDLE_SOCKETS)]
        attack += idle
        slow = [_connect("127.0.0.3", hub.port) for _ in range(SLOWLORIS)]
        attack += slow
        stalled = _connect("127.0.0.4", hub.port)
        attack.append(stalled)
        time.sleep(0.5)  # (connects complete: loopback)
        stalled.setblocking(True)
        stalled.sendall(
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n".encode()
            + b"0123456789"
        )
        stalled.setblocking(False)

        stop = threading.Event()

        def drip() -> None:  # slowloris: one header byte per socket every half second
            line = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
            i = 0
            while not stop.is_set() and i < len(line):
                for s in slow:
                    try:
                        s.send(line[i : i + 1])
                    except OSError:
                        pass
                i += 1
                stop.wait(0.5)

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()

        # the normal client, throughout
        statuses = [hub.request("GET", "/healthz", check=False, timeout=10)[0] for _ in range(5)]
        (work / "verse.txt").write_text("la la\n")
        _muse(home, "commit", "-m", "verse", cwd=work)
        _muse(home, "push", "-u", "origin", "main", cwd=work)
        statuses += [hub.request("GET", "/healthz", check=False, timeout=10)[0] for _ in range(5)]
        assert statuses == [200] * 10

        # every attacker socket is closed by the hub: beyond the per-client limit at once
        # (503), the rest after the header timeout (408 for slowloris), the stalled PUT
        # after the body-idle timeout
        left, first = _wait_closed(attack, time.monotonic() + TIMEOUT_S * 5 + 10)
        stop.set()
        dripper.join(5)
        assert left == 0, f"{left} attacker sockets still open"
        assert sum(1 for d in first if d.startswith(b"HTTP/1.1 503")) >= IDLE_SOCKETS - PER_CLIENT
        assert all(
            d.startswith(b"HTTP/1.1 408") for d in first[IDLE_SOCKETS : IDLE_SOCKETS + SLOWLORIS]
        )
        # and still serving
        assert hub.request("GET", "/healthz", check=False, timeout=10)[0] == 200
        (work / "chorus.txt").write_text("oh\n")
        _muse(home, "commit", "-m", "chorus", cwd=work)
        _muse(home, "push", cwd=work)
    finally:
        for s in attack:
            s.close()
    assert "no request body bytes" in hub.log()
