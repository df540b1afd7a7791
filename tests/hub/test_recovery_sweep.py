"""Garbage after crashes: the hub killed at random points of real pushes, then swept.

A real hub (SQLite + local storage, and PostgreSQL + SeaweedFS) is SIGKILLed while ``muse
push`` runs (presign and stream, at seeded random moments), once in the middle of a presigned
PUT's body (local storage), with an upload that
is never committed and a repository deleted after its pack reached the cache. After a restart
with a short grace the periodic sweep must leave the data directory holding exactly what the
database references: every stored key is a pack of a ``packs`` row, no temp file, no
quarantine directory, no cached pack of a deleted repository, no ledger row still pending;
and the repository still clones whole.
"""

from __future__ import annotations

import os
import random
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures import MUSE, muse_env
from fixtures.recovery import wait_until


def _env(home: Path, token: str) -> dict[str, str]:
    return muse_env(home, MUSE_TOKEN=token, MUSE_HTTP_RETRIES="0")


def _muse(env: dict[str, str], *args: str, cwd: Path | None = None, check: bool = True) -> Any:
    cp = subprocess.run(
        [*MUSE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert not check or cp.returncode == 0, cp.stderr
    return cp


def _stored_keys(hub: Any) -> set[str]:
    """Every key of the hub's storage: files under objects/, or the bucket's objects."""
    if getattr(hub, "bucket", None):
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=hub.env["MUSEHUB_S3_ENDPOINT"],
            aws_access_key_id=hub.env["MUSEHUB_S3_ACCESS_KEY"],
            aws_secret_access_key=hub.env["MUSEHUB_S3_SECRET_KEY"],
            region_name=hub.env.get("MUSEHUB_S3_REGION", "us-east-1"),
        )
        keys = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=hub.bucket):
            keys |= {o["Key"] for o in page.get("Contents", [])}
        return keys
    objects = hub.data_dir / "objects"
    keys = set()
    for d, dirs, files in os.walk(objects):
        if Path(d) == objects:
            # .claims/: single-use marks of presigned URLs (their own expiry), not data
            dirs[:] = [x for x in dirs if x not in (".tmp", ".claims")]
        keys |= {(Path(d) / f).relative_to(objects).as_posix() for f in files}
    return keys


def _rows(hub: Any) -> tuple[list[Any], list[Any]]:
    """(packs rows, pending ledger rows) of the hub's database."""
    packs_q = "SELECT repo_id, name FROM packs"
    pending_q = (
        "SELECT key, state FROM deferred_deletions WHERE state NOT IN ('deleted', 'cancelled')"
    )
    url = hub.env.get("MUSEHUB_DATABASE_URL", "")
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        try:
            with engine.connect() as c:
                return list(c.execute(text(packs_q))), list(c.execute(text(pending_q)))
        finally:
            engine.dispose()
    with sqlite3.connect(hub.data_dir / "musehub.db") as db:
        return db.execute(packs_q).fetchall(), db.execute(pending_q).fetchall()


def _state(hub: Any) -> dict[str, Any]:
    """What the storage holds, and what the database references."""
    keys = _stored_keys(hub)
    packs, pending = _rows(hub)
    objects = hub.data_dir / "objects"
    cache = hub.data_dir / "cache"
    return {
        "keys": keys,
        "referenced": {f"repos/{r}/packs/{n}{s}" for r, n in packs for s in (".pack", ".idx")},
        "names": {n for _, n in packs},
        "pending": pending,
        "put_tmp": os.listdir(objects / ".tmp") if (objects / ".tmp").exists() else [],
        "quarantine": os.listdir(cache / "tmp"),
        "cached": {p.stem for p in (cache / "packs").iterdir()},
    }


def _clean(hub: Any) -> bool:
    st = _state(hub)
    return (
        st["keys"] == st["referenced"]
        and not st["pending"]
        and not st["put_tmp"]
        and not st["quarantine"]
        and st["cached"] <= st["names"]
    )


def _half_put(hub: Any) -> None:
    """A presigned PUT whose body stops half-way: the hub writes it to objects/.tmp/put-*."""
    _, ticket = hub.request(
        "POST", "/alice/song/push/presign", {"size": 4_000_000, "objects": 1}, hub.token
    )
    path = ticket["url"].split(str(hub.port), 1)[1]
    s = socket.create_connection(("127.0.0.1", hub.port))
    s.sendall(f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n".encode())
    s.sendall(os.urandom(2_000_000))
    wait_until(lambda: os.listdir(hub.data_dir / "objects" / ".tmp"), 10, "the PUT's temp file")
    hub.kill()
    s.close()


@pytest.mark.parametrize("backend", ["sqlite+local", "postgresql+s3"])
def test_crashes_leave_nothing_after_the_sweep(
    tmp_path: Path, start_hub: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    env = {"MUSEHUB_SWEEP_INTERVAL_S": "1", "MUSEHUB_SWEEP_GRACE_S": "3600"}
    if backend == "sqlite+local":
        hub = start_hub(tmp_path, env=env)
    else:
        pg = request.getfixturevalue("postgres")
        s3 = request.getfixturevalue("seaweedfs")
        hub = start_hub(tmp_path, storage="s3", s3=s3, database=pg.new_database(), env=env)
    hub.token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    hub.create_repo("alice", "gone")
    env = _env(tmp_path / "home", hub.token)
    root = tmp_path / "src"
    _muse(env, "init", str(root))
    _muse(env, "remote", "add", "origin", hub.repo_url("alice", "song"), cwd=root)
    _muse(env, "remote", "add", "gone", hub.repo_url("alice", "gone"), cwd=root)
    rng = random.Random(12)
    for i in range(4):
        for j in range(25):
            (root / f"c{i}-{j}.bin").write_bytes(os.urandom(120_000))
        _muse(env, "commit", "-m", f"c{i}", cwd=root)
        path = ("presign", "stream")[i % 2]
        proc = subprocess.Popen(
            [*MUSE, "push", "--path", path],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 1.2))
        hub.kill()
        proc.wait(60)
        hub.start()
    if backend == "sqlite+local":  # (a presigned PUT to S3 never touches the hub)
        _half_put(hub)
        hub.start()
    _, ticket = hub.request(
        "POST", "/alice/song/push/presign", {"size": 15, "objects": 1}, hub.token
    )
    from fixtures.services import http_call

    assert http_call("PUT", ticket["url"], b"never committed")[0] == 200
    _muse(env, "push", "gone", "main", cwd=root)
    hub.request("DELETE", "/api/repos/alice/gone", token=hub.admin_token)
    before = _state(hub)
    assert before["pending"]  # there is garbage to sweep
    assert before["put_tmp"] or backend != "sqlite+local"
    # deleting a repository removes its cached packs at once (api.remove_repository_files)
    assert before["cached"] <= before["names"]

    hub.stop()
    hub.env["MUSEHUB_SWEEP_GRACE_S"] = "1"
    time.sleep(1.1)  # everything left is older than the grace now
    hub.start()
    wait_until(lambda: _clean(hub), 30, f"the sweep to clean up: {_state(hub)}")

    _muse(env, "push", cwd=root)  # the repository works: a retry of the push succeeds
    dst = tmp_path / "dst"
    _muse(env, "clone", hub.repo_url("alice", "song"), str(dst))
    assert sorted(os.listdir(dst)) == sorted(os.listdir(root))
    _muse(env, "fsck", cwd=dst)
    assert not hub.unhandled_errors()
