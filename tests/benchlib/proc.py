"""Running and timing whole commands, the way a user waits for them.

A timed command is one process, wall clock, with `sync` (untimed) just before it: the scratch
disk has no journal, and dirty pages left by the set-up would otherwise be flushed inside the
measurement (docs/benchmarks.md, "Definition").
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

GIT = "/usr/bin/git" if os.path.exists("/usr/bin/git") else "git"


def script(name: str) -> list[str]:
    """The real console script (not the slow pyenv shim that `which` finds)."""
    path = os.path.join(sysconfig.get_path("scripts"), name)
    if os.path.exists(path):
        return [path]
    return [sys.executable, "-m", name]


MUSE = script("muse")
MUSEHUB = script("musehub")


class CommandFailed(RuntimeError):
    """A command exited non-zero: the bench reports the run as FAIL with this message."""

    def __init__(self, cmd: Sequence[str], code: int, stderr: str) -> None:
        tail = stderr.strip().splitlines()[-3:] if stderr else []
        super().__init__(f"{' '.join(cmd[:4])} ... exited {code}: {' | '.join(tail)}")
        self.code = code
        self.stderr = stderr


@dataclass
class Timed:
    seconds: float
    stdout: str
    stderr: str


def run(
    cmd: Sequence[str],
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 3600,
) -> subprocess.CompletedProcess[bytes]:
    """Run an untimed helper command, capturing its output."""
    cp = subprocess.run(
        list(cmd),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        input=input,
        capture_output=True,
        timeout=timeout,
    )
    if check and cp.returncode != 0:
        raise CommandFailed(cmd, cp.returncode, cp.stderr.decode(errors="replace"))
    return cp


def timed(
    cmd: Sequence[str],
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 3600,
) -> Timed:
    """Time one whole process (wall clock), after an untimed sync."""
    os.sync()
    t0 = time.perf_counter()
    cp = subprocess.run(
        list(cmd),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    seconds = time.perf_counter() - t0
    out = cp.stdout.decode(errors="replace")
    err = cp.stderr.decode(errors="replace")
    if cp.returncode != 0:
        raise CommandFailed(cmd, cp.returncode, err or out)
    return Timed(seconds, out, err)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts on 127.0.0.1:port (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after a grace period (weed ignores SIGTERM for a long time)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
