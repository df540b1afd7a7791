"""What a verb imports: never hub code, never heavy libraries it does not need."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from .conftest import MUSE, Muse, write_files

FORBIDDEN = ("starlette", "sqlalchemy", "boto3", "botocore", "musehub", "uvicorn", "alembic")


def _imported(muse: Muse, *args: str, cwd: Path | None = None) -> set[str]:
    cp = subprocess.run(
        [MUSE[0], "-X", "importtime", *MUSE[1:], *args],
        cwd=cwd,
        env=muse.env,
        capture_output=True,
        text=True,
    )
    mods = set()
    for line in cp.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            mods.add(line.rsplit("|", 1)[1].strip())
    return mods


def test_help_imports_no_network_code(muse: Muse) -> None:
    for verb in ("fetch", "push", "pull", "clone", "remote", "auth"):
        mods = _imported(muse, verb, "--help")
        assert "http.client" not in mods, verb
        assert "zstandard" not in mods, verb
        assert not any(m.split(".")[0] in FORBIDDEN for m in mods), verb


def test_verbs_import_no_hub_code(muse: Muse, tmp_path: Path, hub: Any) -> None:
    token = hub.create_user("alice")
    hub.create_repo("alice", "light")
    muse.login(hub.url, token)
    src = tmp_path / "src"
    muse.run("init", str(src))
    write_files(src, {"a.txt": "a\n"})
    muse.run("commit", "-m", "a", cwd=src)
    muse.run("remote", "add", "origin", hub.repo_url("alice", "light"), cwd=src)
    for args in (("push",), ("fetch",), ("pull",), ("remote", "-v")):
        mods = _imported(muse, *args, cwd=src)
        bad = sorted(m for m in mods if m.split(".")[0] in FORBIDDEN)
        assert not bad, (args, bad)
        assert "http.client" not in mods and "email" not in mods, args
    assert "zstandard" not in _imported(muse, "remote", "-v", cwd=src)
