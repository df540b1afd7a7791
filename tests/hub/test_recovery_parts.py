"""The hub when its parts fail: PostgreSQL stopped, SeaweedFS killed.

Each test runs its own database server or object store (the session's shared ones keep
running for everyone else) and really stops it under a running hub. What must hold: every
request answers 503 with the code of the part that failed and Retry-After, never a 500;
one log line per such request, no traceback; ``/readyz`` reports the part; the client says
the cause with exit code 7 after at most its retry budget; and when the part is back the hub
serves again within seconds, by itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures import MUSE, ServiceUnavailable, missing, muse_env
from fixtures.recovery import OwnPostgres, OwnSeaweed, wait_until

RETRIES = 3


def _muse_env(home: Path, token: str) -> dict[str, str]:
    return muse_env(
        home, MUSE_TOKEN=token, MUSE_HTTP_RETRIES=str(RETRIES), MUSE_HTTP_BACKOFF="0.05"
    )


def _muse(env: dict[str, str], *args: str, cwd: Path | None = None) -> Any:
    return subprocess.run(
        [*MUSE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _publish(hub: Any, tmp: Path, path: str = "stream") -> tuple[dict[str, str], str, Path]:
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    env = _muse_env(tmp / "home", token)
    root = tmp / "src"
    assert _muse(env, "init", str(root)).returncode == 0
    for i in range(20):
        (root / f"f{i}.bin").write_bytes(os.urandom(20_000))
    assert _muse(env, "commit", "-m", "one", cwd=root).returncode == 0
    url = hub.repo_url("alice", "song")
    _muse(env, "remote", "add", "origin", url, cwd=root)
    cp = _muse(env, "push", "--path", path, cwd=root)
    assert cp.returncode == 0, cp.stderr
    return env, url, root


def _count(hub: Any, text: str) -> int:
    return sum(1 for line in hub.log().splitlines() if text in line)


def _health(hub: Any) -> tuple[int, Any]:
    return tuple(hub.request("GET", "/readyz", check=False))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    try:
        pg = OwnPostgres()
    except ServiceUnavailable as e:
        missing(str(e))
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def own_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnSeaweed]:
    try:
        weed = OwnSeaweed(str(tmp_path_factory.mktemp("own-weed")))
    except ServiceUnavailable as e:
        missing(str(e))
    yield weed
    weed.stop()


def test_database_stopped(tmp_path: Path, start_hub: Any, own_postgres: OwnPostgres) -> None:
    hub = start_hub(tmp_path, database=own_postgres.new_database())
    env, url, _root = _publish(hub, tmp_path)
    own_postgres.down()
    try:
        # (the answer of the last check is reused for about a second)
        status, body = wait_until(lambda: (h := _health(hub))[0] == 503 and h, 10, "503")
        assert body["error"] == "database_unavailable", body
        assert body["database"].startswith("error") and body["storage"] == "ok"
        status, body = hub.request("GET", "/alice/song/refs", check=False)
        assert status == 503 and body["error"] == "database_unavailable"
        cp = _muse(env, "clone", url, str(tmp_path / "c1"))
        assert cp.returncode == 7, cp.stderr
        assert "cannot reach its database (503 database_unavailable)" in cp.stderr
        assert not (tmp_path / "c1").exists()
        # one request, retried within the budget: at most RETRIES + 1 tries in all
        assert 1 <= _count(hub, "GET /alice/song/refs 503") <= 1 + (RETRIES + 1)
    finally:
        own_postgres.up()
    log = hub.log()
    assert "Traceback" not in log and "unhandled error" not in log
    assert _count(hub, "database_unavailable (") >= 2  # one concise line per request
    wait_until(lambda: _health(hub)[0] == 200, 15, "the hub to be healthy again")
    cp = _muse(env, "clone", url, str(tmp_path / "c2"))
    assert cp.returncode == 0, cp.stderr


def test_object_store_killed(tmp_path: Path, start_hub: Any, own_seaweed: OwnSeaweed) -> None:
    hub = start_hub(tmp_path, storage="s3", s3=own_seaweed)
    env, url, root = _publish(hub, tmp_path)
    # a fresh cache: serving a fetch now needs the store
    hub.stop()
    shutil.rmtree(hub.data_dir / "cache")
    hub.start()
    own_seaweed.down()
    try:
        status, body = wait_until(lambda: (h := _health(hub))[0] == 503 and h, 10, "503")
        assert body["error"] == "storage_unavailable", body
        assert body["storage"].startswith("error") and body["database"] == "ok"
        cp = _muse(env, "clone", url, str(tmp_path / "c1"))
        assert cp.returncode == 7, cp.stderr
        assert "cannot reach its object storage (503 storage_unavailable)" in cp.stderr
        # nested retries are gone: the fetch request is tried at most RETRIES + 1 times
        tries = _count(hub, "POST /alice/song/fetch/bundle 503")
        assert 1 <= tries <= RETRIES + 1, tries
        (root / "more.bin").write_bytes(os.urandom(50_000))
        _muse(env, "commit", "-m", "more", cwd=root)
        once = {**env, "MUSE_HTTP_RETRIES": "0"}  # the hub's own S3 retries take seconds
        cp = _muse(once, "push", "--path", "stream", cwd=root)
        assert cp.returncode == 7 and "storage_unavailable" in cp.stderr, cp.stderr
    finally:
        own_seaweed.up()
    log = hub.log()
    assert "Traceback" not in log and "unhandled error" not in log
    wait_until(lambda: _health(hub)[0] == 200, 15, "the hub to be healthy again")
    assert _muse(env, "push", "--path", "stream", cwd=root).returncode == 0
    cp = _muse(env, "clone", url, str(tmp_path / "c2"))
    assert cp.returncode == 0, cp.stderr
    assert sorted(os.listdir(tmp_path / "c2")) == sorted(os.listdir(root))
