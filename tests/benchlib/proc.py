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


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (Linux /proc)."""
    pids = [root]
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid in pids:
                pids.append(int(p))
    return pids


def peak_rss(pid: int) -> int:
    """A live process's peak RSS (VmHWM) in bytes, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) << 10
    except OSError:
        pass
    return 0


def reset_peak_rss(pids: list[int]) -> None:
    """Start the processes' peak RSS again from their current size (clear_refs 5)."""
    for p in pids:
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def measured(
    cmd: Sequence[str], cwd: str | None, env: Mapping[str, str]
) -> tuple[int, float, int, str, str]:
    """Run ``cmd``: (exit code, seconds, peak RSS in bytes of that one process, stdout, stderr).

    The peak comes from /usr/bin/time when there is one: on Linux a child forked from this
    process starts with this process's size in its ru_maxrss (a test runner or a benchmark
    holding data would inflate every figure); one forked from time does not. Otherwise from
    wait4, and then an upper bound.
    """
    import tempfile

    argv = list(cmd)
    rss_file = None
    if _TIME is not None:
        fd, rss_file = tempfile.mkstemp(prefix="rss-")
        os.close(fd)
        argv = [_TIME, "-q", "-f", "%M", "-o", rss_file, *argv]
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t
        rss = int(usage.ru_maxrss) << 10
        if rss_file is not None:
            with open(rss_file) as f:
                words = f.read().split()
            os.unlink(rss_file)
            if words and words[-1].isdigit():
                rss = int(words[-1]) << 10
        out.seek(0)
        err.seek(0)
        return (
            os.waitstatus_to_exitcode(status),
            seconds,
            rss,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )
