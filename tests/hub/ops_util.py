"""Helpers of the operations tests (tests/hub/test_ops_*.py): the `muse` and `musehub`
commands as processes, a working tree with a few commits, a clone that is fsck'ed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fixtures import MUSE, muse_env

MUSEHUB = [sys.executable, "-m", "musehub"]


def muse(env: dict[str, str], *args: str, cwd: Path | None = None, check: bool = True) -> Any:
    proc = subprocess.run(
        [*MUSE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"muse {' '.join(args)} failed: {proc.stderr}")
    return proc


def musehub(
    hub: Any, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> Any:
    """``musehub ARGS`` on the hub's settings (its environment)."""
    return subprocess.run(
        [*MUSEHUB, *args],
        env={**hub.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def user_env(tmp: Path, token: str) -> dict[str, str]:
    return muse_env(tmp / "home", MUSE_TOKEN=token, MUSE_HTTP_RETRIES="0")


def work_tree(env: dict[str, str], root: Path, url: str, commits: int = 2, files: int = 3) -> Path:
    """A repository with ``commits`` commits of ``files`` new files each, pushed to ``url``."""
    muse(env, "init", str(root))
    muse(env, "remote", "add", "origin", url, cwd=root)
    for i in range(commits):
        add_commit(env, root, f"c{i}", files)
    muse(env, "push", "-u", "origin", "main", cwd=root)
    return root


def add_commit(env: dict[str, str], root: Path, tag: str, files: int = 3, size: int = 3000) -> None:
    for j in range(files):
        (root / f"{tag}-{j}.bin").write_bytes(os.urandom(size))
    muse(env, "commit", "-m", tag, cwd=root)


def clone_and_fsck(env: dict[str, str], url: str, dest: Path) -> set[str]:
    """Clone ``url`` into ``dest``, fsck it; returns its file names."""
    muse(env, "clone", url, str(dest))
    muse(env, "fsck", cwd=dest)
    return {p for p in os.listdir(dest) if p != ".muse"}


def start_backend(tmp_path: Path, start_hub: Any, backend: str, request: Any, **kw: Any) -> Any:
    """A hub on ``backend`` ("sqlite+local" or "postgres+s3": a new PostgreSQL database and
    the SeaweedFS fixture), data in ``tmp_path / "hub"``; ``kw`` goes to start_hub."""
    if backend == "sqlite+local":
        return start_hub(tmp_path / "hub", **kw)
    pg, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("seaweedfs")
    return start_hub(tmp_path / "hub", storage="s3", s3=s3, database=pg.new_database(), **kw)
