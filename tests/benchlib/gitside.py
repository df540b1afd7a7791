"""The git side of the comparison: the same history through `git fast-import`, served by
`git daemon` on loopback.

fast-import with exact authors and times makes the git seeding as cheap as ours, and the
ids reproducible, so git's figures are measured on the same work as ours.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator

from . import proc
from .workload import AUTHOR_EMAIL, AUTHOR_NAME, Tier, commits

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": AUTHOR_NAME,
    "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
    "GIT_COMMITTER_NAME": AUTHOR_NAME,
    "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
}


def git_env(home: str) -> dict[str, str]:
    """A clean environment: no user or system config can change what git does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_ENV)
    env["HOME"] = home
    env["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
    return env


def fast_import_parts(tier: Tier, end: int) -> Iterator[bytes]:
    """The fast-import stream of commits 0..end-1 on refs/heads/main, piece by piece."""
    mark = 0
    prev_commit = 0
    for c in commits(tier, 0, end):
        file_marks = []
        for path, data in c.files:
            mark += 1
            yield b"blob\nmark :%d\ndata %d\n" % (mark, len(data))
            yield data
            yield b"\n"
            file_marks.append((path, mark))
        mark += 1
        msg = c.message.encode()
        sig = f"{AUTHOR_NAME} <{AUTHOR_EMAIL}> {c.time} +0000".encode()
        head = [b"commit refs/heads/main\nmark :%d\n" % mark]
        head.append(b"author " + sig + b"\ncommitter " + sig + b"\n")
        head.append(b"data %d\n" % len(msg) + msg + b"\n")
        if prev_commit:
            head.append(b"from :%d\n" % prev_commit)
        for path, m in file_marks:
            head.append(b"M 100644 :%d %s\n" % (m, path.encode()))
        head.append(b"\n")
        yield b"".join(head)
        prev_commit = mark


def fast_import_stream(tier: Tier, end: int) -> bytes:
    """The whole fast-import stream of commits 0..end-1 (small tiers; tests)."""
    return b"".join(fast_import_parts(tier, end))


def seed(repo_dir: str, tier: Tier, end: int, env: dict[str, str], bare: bool = False) -> str:
    """A new git repository holding commits 0..end-1 on main; returns the tip id. The stream
    is fed to git fast-import as it is made (the media tier's is gigabytes)."""
    cmd = [proc.GIT, "init", "-q", "-b", "main"] + (["--bare"] if bare else []) + [repo_dir]
    proc.run(cmd, env=env)
    if end <= 0:
        return ""
    fi = subprocess.Popen(
        [proc.GIT, "fast-import", "--quiet", "--done"],
        cwd=repo_dir,
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert fi.stdin is not None and fi.stderr is not None
    try:
        for part in fast_import_parts(tier, end):
            fi.stdin.write(part)
        fi.stdin.write(b"done\n")
        fi.stdin.close()
    except BrokenPipeError:
        pass
    err = fi.stderr.read()
    if fi.wait() != 0:
        raise proc.CommandFailed(fi.args, fi.returncode, err.decode(errors="replace"))
    return rev_parse(repo_dir, "refs/heads/main", env)


def rev_parse(repo_dir: str, ref: str, env: dict[str, str]) -> str:
    cp = proc.run(
        [proc.GIT, "rev-parse", "--verify", "-q", ref], cwd=repo_dir, env=env, check=False
    )
    return cp.stdout.decode().strip() if cp.returncode == 0 else ""


class GitServer:
    """Where git's side keeps its bare repositories (``base_dir``) and the URL it serves
    each one at."""

    base_dir: str
    env: dict[str, str]

    def url(self, name: str) -> str:
        raise NotImplementedError

    def new_repo(self, name: str) -> str:
        """A fresh, empty bare repository under the server; returns its URL."""
        path = os.path.join(self.base_dir, name)
        proc.run([proc.GIT, "init", "-q", "--bare", "-b", "main", path], env=self.env)
        return self.url(name)

    def stop(self) -> None:
        """Nothing to stop for a server we did not start."""


class GitHttp(GitServer):
    """git's smart HTTP(S) served by someone else (staging: ``git http-backend`` behind the
    same nginx as the hub), its repositories in ``base_dir`` on this machine."""

    def __init__(self, base_url: str, base_dir: str, env: dict[str, str]) -> None:
        self.base_url = base_url.rstrip("/")
        self.base_dir = base_dir
        self.env = env

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


class GitDaemon(GitServer):
    """`git daemon` on a loopback port serving (and accepting pushes into) base_dir."""

    def __init__(self, base_dir: str, env: dict[str, str]) -> None:
        self.base_dir = base_dir
        self.env = env
        self.port = proc.free_port()
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [
                proc.GIT,
                "daemon",
                "--export-all",
                "--enable=receive-pack",
                f"--base-path={base_dir}",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                "--reuseaddr",
                base_dir,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        proc.wait_port(self.port, 10, self.proc)

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        proc.stop(self.proc)
        self._log.close()
