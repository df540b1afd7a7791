"""Helpers for the client's end-to-end tests: the real ``muse`` command as a subprocess.

Every test gets its own HOME / MUSE_CONFIG_DIR (stored tokens stay in the test), a fixed
identity, and short retry backoff so tests about failures stay fast.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures import MUSE, muse_env


class Muse:
    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        env = muse_env(home, MUSE_HTTP_BACKOFF="0.05", MUSE_HTTP_RETRIES="3")
        self.env = env

    def run(
        self,
        *args: str,
        cwd: Path | str | None = None,
        input: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run(
            [*MUSE, *args],
            cwd=cwd,
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and cp.returncode != 0:
            raise AssertionError(
                f"muse {' '.join(args)} exited {cp.returncode}:\n{cp.stdout}\n{cp.stderr}"
            )
        return cp

    def json(self, *args: str, cwd: Path | str | None = None, **kw: Any) -> dict[str, Any]:
        cp = self.run(*args, "--json", cwd=cwd, **kw)
        return dict(json.loads(cp.stdout.strip().splitlines()[-1]))

    def login(self, url: str, token: str) -> None:
        self.run("auth", "login", url, "--token-stdin", input=token + "\n")


@pytest.fixture
def muse(tmp_path: Path) -> Muse:
    return Muse(tmp_path / "home")


@pytest.fixture
def new_muse(tmp_path: Path) -> Callable[[str], Muse]:
    """Another user (own HOME and credentials)."""
    return lambda name: Muse(tmp_path / f"home-{name}")


def write_files(root: Path, files: dict[str, bytes | str | None]) -> None:
    for rel, data in files.items():
        p = root / rel
        if data is None:
            p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)


def tree_of(root: Path) -> dict[str, bytes]:
    """Every file under root (except .muse) with its bytes; symlinks as their target."""
    out: dict[str, bytes] = {}
    for d, dirs, files in os.walk(root):
        if Path(d) == root and ".muse" in dirs:
            dirs.remove(".muse")
        for f in files:
            p = Path(d) / f
            rel = p.relative_to(root).as_posix()
            out[rel] = os.readlink(p).encode() if p.is_symlink() else p.read_bytes()
    return out
