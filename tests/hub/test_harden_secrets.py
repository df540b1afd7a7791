"""No secret reaches the environment of the hub's worker processes (issue 11).

``musehub serve --workers 2`` on PostgreSQL (a URL with a password) + SeaweedFS (an S3
secret key) and on SQLite + local storage (a generated secret key): the
``/proc/<pid>/environ`` of every process under the hub holds neither the secret key, nor the
S3 secret, nor the database password, and the workers still have them (pushes, presigned
URLs and the database work).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fixtures import Hub
from proto_util import History, HubClient, update

MAIN = "refs/heads/main"
DB_PASSWORD = "pw-Secr3t-for-the-test"  # trust authentication accepts any password


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (uvicorn's workers, multiprocessing helpers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def works(hub: Hub) -> None:
    """Both workers answer with the settings they were handed (several requests, so that
    the kernel spreads them over the workers)."""
    token = hub.create_user("alice")
    hub.create_repo("alice", "song", private=True)
    client = HubClient(hub.url, "alice", "song", token)
    h = History()
    tip = None
    for i in range(4):
        new = h.commit({f"f{i}": os.urandom(100)}, tip)
        pack = h.pack_of(h.reachable(new) - (h.reachable(tip) if tip else set()))
        r = client.push_presign([update(MAIN, tip, new)], pack)  # signed with the secret
        assert r.status == 200, r.body
        tip = new
    assert client.refs().json()["refs"] == {MAIN: tip.hex()}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_worker_environments_hold_no_secret(
    tmp_path: Path, start_hub: Any, request: pytest.FixtureRequest, backend: str
) -> None:
    if backend == "sqlite":
        hub = start_hub(tmp_path, workers=2)
        secrets = [(hub.data_dir / "secret_key").read_text().strip()]
    else:
        pg, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("seaweedfs")
        url = pg.new_database().replace("muse@", f"muse:{DB_PASSWORD}@")
        env = {"MUSEHUB_SECRET_KEY": "configured-secret-key-0123456789"}
        hub = start_hub(tmp_path, storage="s3", s3=s3, database=url, workers=2, env=env)
        secrets = [env["MUSEHUB_SECRET_KEY"], s3.secret_key, DB_PASSWORD]
    works(hub)
    assert hub.proc is not None
    workers = descendants(hub.proc.pid)
    assert len(workers) >= 2, workers
    for pid in workers:
        env_bytes = environ(pid)
        for secret in secrets:
            assert secret.encode() not in env_bytes, (pid, secret)
        assert b"MUSEHUB_SETTINGS_JSON" not in env_bytes
    # The hand-over file is the hub's alone, and goes when the hub stops.
    handed = list(hub.data_dir.glob(".worker-settings-*.json"))
    assert len(handed) == 1 and handed[0].stat().st_mode & 0o077 == 0
    hub.stop()
    assert not handed[0].exists()


def test_a_killed_hubs_hand_over_file_is_removed_at_next_start(
    tmp_path: Path, start_hub: Any
) -> None:
    hub = start_hub(tmp_path, workers=2)
    hub.kill()
    (left,) = hub.data_dir.glob(".worker-settings-*.json")
    hub.start()
    assert not left.exists()
    assert len(list(hub.data_dir.glob(".worker-settings-*.json"))) == 1
