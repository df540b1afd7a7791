"""What the hub keeps on its host is its user's alone (issue 11, "Durability and file modes").

After real pushes (both paths) and a clone by the ``muse`` command against a real hub (two
worker processes), every directory under the data directory is 0700 and no file there has a
group or other permission bit: packs, indexes, uploads, bundles, the cache, ``musehub.db``
and its WAL, the secret key. A data directory an earlier version left 0755, with a 0644
database, is made private when the hub starts.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fixtures import MUSE, Hub, muse_env


def muse(home: Path, *args: str, cwd: Path | None = None, stdin: str | None = None) -> str:
    env = muse_env(home)
    cp = subprocess.run(
        [*MUSE, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    assert cp.returncode == 0, f"muse {' '.join(args)}: {cp.stdout}\n{cp.stderr}"
    return cp.stdout


def loose_modes(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) that others could read or enter."""
    bad = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077 or (path.is_dir() and mode != 0o700):
            bad.append(f"{oct(mode)} {path.relative_to(root.parent)}")
    return bad


def push_and_clone(hub: Hub, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    token = hub.create_user("alice")
    hub.create_repo("alice", "song", private=True)
    muse(home, "auth", "login", hub.url, "--token-stdin", stdin=token + "\n")
    src = tmp_path / "src"
    muse(home, "init", str(src))
    for i in range(5):
        (src / f"f{i}.txt").write_text(f"secret {i}\n" * 50)
    muse(home, "commit", "-m", "one", cwd=src)
    muse(home, "remote", "add", "origin", hub.repo_url("alice", "song"), cwd=src)
    muse(home, "push", "--path", "presign", "-u", "origin", "main", cwd=src)
    (src / "more.bin").write_bytes(os.urandom(50_000))
    muse(home, "commit", "-m", "two", cwd=src)
    muse(home, "push", "--path", "stream", cwd=src)
    muse(home, "clone", "--path", "presign", hub.repo_url("alice", "song"), str(tmp_path / "dst"))
    assert (tmp_path / "dst" / "f3.txt").read_text() == "secret 3\n" * 50


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_everything_the_hub_writes_is_private(
    tmp_path: Path, start_hub: Any, request: pytest.FixtureRequest, backend: str
) -> None:
    if backend == "sqlite":
        hub = start_hub(tmp_path, workers=2)
    else:
        pg, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("seaweedfs")
        hub = start_hub(tmp_path, storage="s3", s3=s3, database=pg.new_database(), workers=2)
    push_and_clone(hub, tmp_path)
    data = hub.data_dir
    files = [p for p in data.rglob("*") if p.is_file()]
    # The test looks where it should: packs in the cache (and in storage when it is local).
    assert any(p.suffix == ".pack" for p in files) and any(p.suffix == ".idx" for p in files)
    if backend == "sqlite":
        assert stat.S_IMODE((data / "musehub.db").stat().st_mode) == 0o600
        assert list((data / "objects").rglob("*.pack"))
    assert stat.S_IMODE((data / "secret_key").stat().st_mode) == 0o600
    hub.stop()  # what exists at rest, the log aside (the test writes it)
    (data / "musehub.log").chmod(0o600)
    assert loose_modes(data) == []


def test_an_open_data_directory_is_closed_at_start(tmp_path: Path, start_hub: Any) -> None:
    hub = start_hub(tmp_path)
    hub.stop()
    data = hub.data_dir
    for path in (data, data / "objects", data / "cache"):
        path.chmod(0o755)
    (data / "musehub.db").chmod(0o644)
    (data / "secret_key").chmod(0o644)
    hub.start()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("objects", "cache"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o700
    for name in ("musehub.db", "secret_key"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600
