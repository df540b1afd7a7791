"""``musehub backup`` and ``musehub restore`` (issue 16): a backup taken while pushes go on
restores onto a new hub, on SQLite + local files and on PostgreSQL + SeaweedFS, to exactly
the snapshot's rows; every repository then clones and fscks, its refs are the snapshot's,
the old tokens work and private stays private. A damaged backup, a non-empty destination and
rows the database refuses leave nothing behind."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from fixtures import free_port, hub_env
from ops_util import MUSEHUB, add_commit, clone_and_fsck, muse, musehub, user_env, work_tree
from sqlalchemy import MetaData, create_engine, select, text
from test_ops_admin import _ok, _refused

from musehub.backup import SKIPPED_TABLES


def _run(env: dict[str, str], *args: str) -> Any:
    import subprocess

    return subprocess.run(
        [*MUSEHUB, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def _rows(backup: Path, table: str) -> list[dict[str, Any]]:
    lines = (backup / "tables" / f"{table}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _snapshot_refs(backup: Path) -> dict[str, dict[str, str]]:
    """owner/slug -> {ref: target} as the backup's rows say."""
    users = {u["id"]: u["username"] for u in _rows(backup, "users")}
    repos = {r["id"]: f"{users[r['owner_id']]}/{r['slug']}" for r in _rows(backup, "repos")}
    out: dict[str, dict[str, str]] = {name: {} for name in repos.values()}
    for ref in _rows(backup, "refs"):
        out[repos[ref["repo_id"]]][ref["name"]] = ref["target"]
    return out


def _db_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every table's rows (key order), read straight from a database."""
    engine = create_engine(url)
    try:
        md = MetaData()
        md.reflect(engine)
        with engine.connect() as conn:
            return {
                t.name: [
                    dict(r)
                    for r in conn.execute(
                        select(t).order_by(*(t.primary_key.columns or t.columns))
                    ).mappings()
                ]
                for t in md.sorted_tables
                if t.name not in SKIPPED_TABLES
            }
    finally:
        engine.dispose()


class Pusher(threading.Thread):
    """Commits and pushes to one repository until told to stop (after ``at_least`` more)."""

    def __init__(self, env: dict[str, str], root: Path, tag: str) -> None:
        super().__init__(daemon=True)
        self.env, self.root, self.tag = env, root, tag
        self.pushed = 0
        self.stop_after: int | None = None
        self.error: BaseException | None = None
        self.started_one = threading.Event()

    def run(self) -> None:
        try:
            while self.stop_after is None or self.pushed < self.stop_after:
                add_commit(self.env, self.root, f"{self.tag}{self.pushed}", files=2, size=20_000)
                muse(self.env, "push", cwd=self.root)
                self.pushed += 1
                self.started_one.set()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
            self.started_one.set()

    def finish(self, more: int = 2) -> None:
        self.stop_after = self.pushed + more
        self.join(300)
        assert not self.is_alive() and self.error is None, self.error


def _wait_for_a_repack(database_url: str, pushers: list[Pusher], timeout: float = 240) -> None:
    """Until a repack (more than REPACK_AT pushes to one repository) replaced packs."""
    import time

    engine = create_engine(database_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert all(p.error is None for p in pushers), [p.error for p in pushers]
            with engine.connect() as conn:
                n = conn.execute(
                    text(
                        "SELECT count(*) FROM deferred_deletions WHERE state = 'scheduled' "
                        "AND key LIKE '%/packs/%'"
                    )
                ).scalar()
            if n:
                return
            time.sleep(0.2)
    finally:
        engine.dispose()
    raise AssertionError("no repack happened")


def _source_hub(
    tmp_path: Path, start_hub: Any, backend: str = "sqlite+local", request: Any = None
) -> tuple[Any, dict[str, str]]:
    """A hub with public, private, empty and deleted repositories, a collaborator, a revoked
    token; returns it and the users' tokens."""
    kw: dict[str, Any] = {}
    if backend == "postgres+s3":
        pg, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("seaweedfs")
        kw = dict(storage="s3", s3=s3, database=pg.new_database())
    hub = start_hub(tmp_path / "src", **kw)
    tokens = {name: hub.create_user(name) for name in ("alice", "bob", "carol")}
    revoked = hub.create_token("alice")
    _ok(musehub(hub, "token", "revoke", revoked))
    tokens["revoked"] = revoked
    hub.create_repo("alice", "song")
    hub.create_repo("alice", "secret", private=True)
    hub.create_repo("bob", "empty")
    hub.create_repo("alice", "gone")
    _ok(musehub(hub, "repo", "delete", "alice/gone", "--yes"))  # ids stay used
    _ok(musehub(hub, "collaborator", "add", "alice/secret", "bob"))
    return hub, tokens


def _restore_target(
    tmp_path: Path, target: str, request: pytest.FixtureRequest
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(port, environment, start_hub arguments) of a new, empty hub on ``target``."""
    port = free_port()
    data_dir = tmp_path / "dst" / f"hub-{port}"
    kw: dict[str, Any] = {}
    if target == "postgres+s3":
        pg, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("seaweedfs")
        kw = dict(storage="s3", s3=s3, bucket=s3.new_bucket(), database=pg.new_database())
    env = hub_env(data_dir, port, **kw)
    return port, env, kw


@pytest.mark.parametrize(
    "source,target",
    [
        ("sqlite+local", "sqlite+local"),
        ("sqlite+local", "postgres+s3"),
        ("postgres+s3", "sqlite+local"),
    ],
)
def test_backup_during_pushes_restores_exactly(
    tmp_path: Path, start_hub: Any, source: str, target: str, request: pytest.FixtureRequest
) -> None:
    hub, tokens = _source_hub(tmp_path, start_hub, source, request)
    alice, bob = user_env(tmp_path / "a", tokens["alice"]), user_env(tmp_path / "b", tokens["bob"])
    song = work_tree(alice, tmp_path / "song", hub.repo_url("alice", "song"))
    secret = work_tree(bob, tmp_path / "secret", hub.repo_url("alice", "secret"))
    muse(alice, "branch", "side", cwd=song)
    muse(alice, "push", "origin", "side", cwd=song)

    # pushes to both repositories go on before, during and after the backup process
    pushers = [Pusher(alice, song, "s"), Pusher(bob, secret, "p")]
    for p in pushers:
        p.start()
    for p in pushers:
        assert p.started_one.wait(120)
    _wait_for_a_repack(hub.database_url, pushers)  # its replaced packs go into the backup too
    dest = tmp_path / "backup"
    r = _ok(musehub(hub, "backup", str(dest)))
    assert f"to {dest}" in r.stderr
    for p in pushers:
        p.finish()
    assert os.stat(dest).st_mode & 0o077 == 0  # token hashes, private repositories

    snapshot = _snapshot_refs(dest)
    assert set(snapshot) == {"alice/song", "alice/secret", "bob/empty"}
    assert set(snapshot["alice/song"]) == {"refs/heads/main", "refs/heads/side"}
    assert snapshot["bob/empty"] == {}
    manifest = json.loads((dest / "manifest.json").read_text())
    database, storage = source.replace("postgres", "postgresql").split("+")
    assert manifest["source"] == {"database": database, "storage": storage}
    # the packs rows' objects, and the packs a repack replaced (kept for their grace)
    packs = _rows(dest, "packs")
    retired = _rows(dest, "deferred_deletions")
    assert retired and all(r["state"] == "scheduled" for r in retired)
    assert {o["key"] for o in manifest["objects"]} == {
        f"repos/{p['repo_id']}/packs/{p['name']}{sfx}" for p in packs for sfx in (".pack", ".idx")
    } | {r["key"].removesuffix(".pack") + sfx for r in retired for sfx in (".pack", ".idx")}

    port, env, kw = _restore_target(tmp_path, target, request)
    r = _ok(_run(env, "restore", str(dest)))
    assert "restored 4 users, 3 repositories" in r.stderr
    # exactly the snapshot's rows (before the restored hub serves and touches last_used)
    restored = _db_rows(env["MUSEHUB_DATABASE_URL"])
    for t in manifest["tables"]:
        assert restored[t["name"]] == _rows(dest, t["name"]), t["name"]
    assert set(restored) == {t["name"] for t in manifest["tables"]}

    new = start_hub(tmp_path / "dst", port=port, **kw)
    owners = {"alice/song": alice, "alice/secret": bob, "bob/empty": bob}
    for name, refs in snapshot.items():
        owner, slug = name.split("/")
        token = tokens["alice"] if owner == "alice" else tokens["bob"]
        _, body = new.request("GET", f"/{name}/refs", token=token)
        assert body["refs"] == refs, name
        if refs:  # a full clone of every repository with history, verified
            files = clone_and_fsck(
                owners[name], new.repo_url(owner, slug), tmp_path / "clones" / slug
            )
            assert files
            head = muse(
                owners[name], "log", "-n", "1", "--format", "%H", cwd=tmp_path / "clones" / slug
            )
            assert head.stdout.strip() == refs["refs/heads/main"]

    # the old tokens work (and the revoked one stays revoked); private stays private
    assert new.request("GET", "/api/user", token=tokens["carol"])[1]["username"] == "carol"
    assert new.request("GET", "/api/user", token=tokens["revoked"], check=False)[0] == 401
    assert new.request("GET", "/alice/secret/refs", check=False)[0] == 404
    assert new.request("GET", "/alice/secret/refs", token=tokens["carol"], check=False)[0] == 404

    # the restored hub goes on: new rows get new ids (sequences), pushes land
    new.create_user("dave")
    new.create_repo("alice", "next")
    gone_id = manifest["sequences"]["repos"]  # alice/gone's, deleted before the backup
    assert gone_id > max(r["id"] for r in _rows(dest, "repos"))
    ids = [r["id"] for r in _db_rows(env["MUSEHUB_DATABASE_URL"])["repos"]]
    assert max(ids) == gone_id + 1  # never handed out twice
    muse(alice, "remote", "set-url", "origin", new.repo_url("alice", "song"), cwd=song)
    muse(alice, "pull", cwd=song)
    add_commit(alice, song, "after")
    muse(alice, "push", cwd=song)
    clone_and_fsck(alice, new.repo_url("alice", "song"), tmp_path / "again")


def test_bad_backups_and_destinations_leave_nothing(
    tmp_path: Path, start_hub: Any, request: pytest.FixtureRequest
) -> None:
    hub, tokens = _source_hub(tmp_path, start_hub)
    alice = user_env(tmp_path / "a", tokens["alice"])
    work_tree(alice, tmp_path / "song", hub.repo_url("alice", "song"))

    # backing up into something that is not a new, empty directory is refused, untouched
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("mine")
    _refused(musehub(hub, "backup", str(full)), 4, "not empty")
    assert os.listdir(full) == ["keep"]
    _refused(musehub(hub, "backup", str(full / "keep")), 4, "not a directory")
    _refused(musehub(hub, "backup", str(tmp_path / "no" / "such")), 1, "parent")
    good = tmp_path / "good"
    _ok(musehub(hub, "backup", str(good)))

    # a hub that is not empty is refused (the source itself)
    _refused(musehub(hub, "restore", str(good)), 4, "not empty")

    port, env, _ = _restore_target(tmp_path, "sqlite+local", request)
    data_dir = Path(env["MUSEHUB_DATA_DIR"])

    def damaged(name: str, change: Any) -> Path:
        import shutil

        copy = tmp_path / name
        shutil.copytree(good, copy)
        change(copy)
        return copy

    manifest = json.loads((good / "manifest.json").read_text())
    pack = next(o["key"] for o in manifest["objects"] if o["key"].endswith(".pack"))

    def truncate(p: Path) -> None:
        f = p / "objects" / pack
        f.write_bytes(f.read_bytes()[:-100])

    def flip(p: Path) -> None:  # same length, other bytes
        f = p / "tables" / "refs.jsonl"
        data = f.read_bytes()
        i = data.index(b'"target": "') + 12
        f.write_bytes(data[:i] + (b"0" if data[i : i + 1] != b"0" else b"1") + data[i + 1 :])

    cases = [
        (damaged("truncated", truncate), "does not match the manifest"),
        (damaged("flipped", flip), "refs.jsonl does not match"),
        (damaged("unfinished", lambda p: (p / "manifest.json").unlink()), "unfinished"),
        (damaged("lacking", lambda p: (p / "objects" / pack).unlink()), "lacks"),
        (damaged("garbled", lambda p: (p / "manifest.json").write_text("{")), "not valid JSON"),
        (tmp_path / "nowhere", "not a directory"),
    ]
    for src, needle in cases:
        _refused(_run(env, "restore", str(src)), 1, needle)
        assert not data_dir.exists()  # checked whole before anything is written

    # rows the database refuses (checksums made right): rolled back, uploads deleted again
    def duplicate_user(p: Path) -> None:
        f = p / "tables" / "users.jsonl"
        lines = f.read_text().splitlines()
        twin = json.loads(lines[1]) | {"id": 999}
        f.write_text("\n".join([*lines, json.dumps(twin)]) + "\n")
        m = json.loads((p / "manifest.json").read_text())
        import hashlib

        for t in m["tables"]:
            if t["name"] == "users":
                t["rows"] += 1
                t["bytes"] = f.stat().st_size
                t["sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
        (p / "manifest.json").write_text(json.dumps(m))

    _refused(_run(env, "restore", str(damaged("dup", duplicate_user))), 1, "refused")
    assert all(not rows for rows in _db_rows(env["MUSEHUB_DATABASE_URL"]).values())
    assert not [f for _, _, fs in os.walk(data_dir / "objects" / "repos") for f in fs]

    # and the good backup then restores into that same hub
    _ok(_run(env, "restore", str(good)))
    new = start_hub(tmp_path / "dst", port=port)
    _, body = new.request("GET", "/alice/song/refs", token=tokens["alice"])
    assert body["refs"] == _snapshot_refs(good)["alice/song"]
    clone_and_fsck(alice, new.repo_url("alice", "song"), tmp_path / "clone")
    _refused(_run(env, "restore", str(good)), 4, "not empty")


def test_a_repository_deleted_during_the_copy_takes_a_new_snapshot(
    tmp_path: Path, start_hub: Any
) -> None:
    """The worst moment: the rows are read, then a repository goes (its objects at once)
    before its packs are copied. The backup notices and snapshots again; a pack lost for
    good fails it, naming the key, and leaves no directory behind."""
    from musehub.backup.snapshot import backup
    from musehub.config import load_settings
    from musehub.db import Database, Repo
    from musehub.storage.local import LocalStorage

    hub, tokens = _source_hub(tmp_path, start_hub)
    alice = user_env(tmp_path / "a", tokens["alice"])
    hub.create_repo("alice", "doomed")
    work_tree(alice, tmp_path / "song", hub.repo_url("alice", "song"))
    work_tree(alice, tmp_path / "doomed", hub.repo_url("alice", "doomed"))
    settings = load_settings(env=hub.env)
    db = Database(settings.database_url)
    with db.session(readonly=True) as s:
        doomed = s.execute(select(Repo.id).where(Repo.slug == "doomed")).scalar_one()

    class Racing(LocalStorage):
        raced = False

        def open_read(self, key: str) -> Any:
            if key.startswith(f"repos/{doomed}/") and not self.raced:
                self.raced = True  # between the snapshot and this copy, through the hub
                hub.request("DELETE", "/api/repos/alice/doomed", token=hub.admin_token)
            return super().open_read(key)

    storage = Racing(settings.storage_dir, settings.public_url, "")
    try:
        summary = backup(db, storage, str(tmp_path / "b"))
    finally:
        db.dispose()
    assert storage.raced and summary.tables["repos"] == 3
    assert set(_snapshot_refs(tmp_path / "b")) == {"alice/song", "alice/secret", "bob/empty"}
    stored = {
        str(p.relative_to(tmp_path / "b" / "objects"))
        for p in (tmp_path / "b" / "objects").rglob("*")
        if p.is_file()
    }
    keys = {o["key"] for o in json.loads((tmp_path / "b" / "manifest.json").read_text())["objects"]}
    assert stored == keys and not any(k.startswith(f"repos/{doomed}/") for k in keys)

    # a pack the store lost for good
    lost = next((hub.data_dir / "objects" / "repos").rglob("*.pack"))
    lost.unlink()
    r = musehub(hub, "backup", str(tmp_path / "c"))
    _refused(r, 1, "is not in storage")
    assert lost.name in r.stderr and not (tmp_path / "c").exists()


def test_a_backup_of_an_older_schema_restores_then_migrates(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A backup made at revision 0003 (before users could be disabled) restores at 0003,
    then the newest migrations run on the restored rows."""
    from musehub.backup.snapshot import backup
    from musehub.db import Database
    from musehub.db.migrate import HEAD, current_revision, upgrade
    from musehub.storage.local import LocalStorage

    old = tmp_path / "old"
    old.mkdir()
    db = Database(f"sqlite:///{old / 'musehub.db'}")
    try:
        upgrade(db, "0003")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, username, is_admin, created_at) VALUES (7, 'ann', 0, 1)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO repos (id, owner_id, slug, private, default_branch, created_at)"
                    " VALUES (5, 7, 'tune', 1, 'main', 2)"
                )
            )
        backup(db, LocalStorage(str(old / "objects"), "http://127.0.0.1:1", ""), str(old / "b"))
    finally:
        db.dispose()
    assert json.loads((old / "b" / "manifest.json").read_text())["schema_revision"] == "0003"
    assert "disabled" not in _rows(old / "b", "users")[0]

    _, env, _ = _restore_target(tmp_path, "sqlite+local", request)
    _ok(_run(env, "restore", str(old / "b")))
    restored = _db_rows(env["MUSEHUB_DATABASE_URL"])
    (user,) = restored["users"]  # the columns of 0003 as they were, the new ones' defaults
    assert {k: user[k] for k in ("id", "username", "is_admin", "created_at")} == {
        "id": 7,
        "username": "ann",
        "is_admin": False,
        "created_at": 1,
    }
    assert user["disabled"] is False and user["quota_bytes"] is None
    assert [(r["id"], r["slug"], r["private"]) for r in restored["repos"]] == [(5, "tune", True)]
    target = Database(env["MUSEHUB_DATABASE_URL"])
    try:
        assert current_revision(target) == HEAD
    finally:
        target.dispose()
