"""``musehub gc`` end to end (issue 16, "Clean-up and limits"): a real hub, real ``muse``
pushes, a force push and a branch and a tag deleted on the hub, then ``musehub gc`` as a
process: its figures, the storage shrinking once the sweep deleted the replaced packs, a
fresh clone that fscks clean; ``--dry-run`` and the grace change nothing; and gc run again
and again while pushes (with and without objects) and clones go on, on both databases and
both storages."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures.recovery import wait_until
from ops_util import (
    add_commit,
    clone_and_fsck,
    muse,
    musehub,
    start_backend,
    user_env,
    work_tree,
)

FIGURES = re.compile(
    r"^(?P<name>\S+): packs (?P<before>\d+) -> (?P<after>\d+), (?:would drop|dropped) "
    r"(?P<objects>\d+) objects, (?:would free|freed) (?P<bytes>-?\d+) bytes",
    re.M,
)


def _storage(hub: Any) -> Any:
    from musehub.config import load_settings
    from musehub.storage import open_storage

    return open_storage(load_settings(env=hub.env, make_secret=False))


def _stored(hub: Any) -> tuple[int, int]:
    """(pack keys, bytes of .pack and .idx keys) under repos/ of the hub's storage."""
    from musehub.storage import NotFound

    storage = _storage(hub)
    packs = size = 0
    for key in storage.list("repos/"):
        if "/packs/" in key:
            try:
                size += storage.size(key)
            except NotFound:  # swept meanwhile
                continue
            packs += key.endswith(".pack")
    return packs, size


def _rows(hub: Any) -> list[tuple[int, str]]:
    from musehub.db import Database
    from musehub.protocol import dbops

    db = Database(hub.database_url)
    try:
        with db.session(readonly=True) as s:
            return sorted(dbops.all_packs(s))
    finally:
        db.dispose()


def _ids(hub: Any, owner: str, slug: str) -> tuple[int, int]:
    """(repository id, owner id) in the hub's database."""
    from musehub.db import Database
    from musehub.protocol import dbops

    db = Database(hub.database_url)
    try:
        with db.session(readonly=True) as s:
            found = [(r, o) for r, o, n in dbops.repo_owners(s) if n == f"{owner}/{slug}"]
    finally:
        db.dispose()
    return found[0]


def _sql(hub: Any, fn: Any) -> Any:
    from musehub.db import Database

    db = Database(hub.database_url)
    try:
        with db.session() as s:
            return fn(s)
    finally:
        db.dispose()


def _gc(hub: Any, *args: str) -> dict[str, dict[str, int]]:
    r = musehub(hub, "gc", *args)
    assert r.returncode == 0, r.stderr
    assert "total: " in r.stdout, r.stdout
    return {
        m["name"]: {k: int(m[k]) for k in ("before", "after", "objects", "bytes")}
        for m in FIGURES.finditer(r.stdout)
        if m["name"] != "total"
    }


def _garbage(env: dict[str, str], root: Path) -> set[str]:
    """On top of a pushed main: a branch with two commits and an annotated tag on it, both
    pushed and then deleted on the hub; main's last commit replaced by a force push; a kept
    tag and a kept branch. Leaves 16 unreachable objects on the hub (2 x (commit, tree, 3
    blobs) on the branch, the tag object, the replaced commit with its tree and 3 blobs).
    Returns the files of main."""
    muse(env, "tag", "-a", "-m", "kept", "v1", cwd=root)
    muse(env, "checkout", "-b", "keep", cwd=root)
    muse(env, "checkout", "main", cwd=root)
    muse(env, "checkout", "-b", "feature", cwd=root)
    add_commit(env, root, "f0")
    add_commit(env, root, "f1")
    muse(env, "tag", "-a", "-m", "doomed", "v-doomed", cwd=root)
    muse(env, "push", "origin", "feature", "keep", cwd=root)
    muse(env, "push", "origin", "v1", "v-doomed", cwd=root)
    muse(env, "checkout", "main", cwd=root)
    add_commit(env, root, "m2")
    muse(env, "push", "origin", "main", cwd=root)
    muse(env, "push", "--delete", "origin", "feature", "v-doomed", cwd=root)
    muse(env, "reset", "--hard", "HEAD~1", cwd=root)
    add_commit(env, root, "m3")
    muse(env, "push", "-f", "origin", "main", cwd=root)
    return {p.name for p in root.iterdir() if p.name != ".muse"}


@pytest.mark.parametrize("backend", ["sqlite+local", "postgres+s3"])
def test_gc_drops_what_no_ref_reaches(
    tmp_path: Path, start_hub: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    # A short sweep grace: the replaced packs are deleted from storage soon after gc.
    env_hub = {"MUSEHUB_SWEEP_INTERVAL_S": "1", "MUSEHUB_SWEEP_GRACE_S": "3"}
    hub = start_backend(tmp_path, start_hub, backend, request, env=env_hub)
    alice = hub.create_user("alice")
    hub.create_repo("alice", "song")
    hub.create_repo("alice", "clean")
    env = user_env(tmp_path, alice)
    src = work_tree(env, tmp_path / "src", hub.repo_url("alice", "song"))
    files = _garbage(env, src)
    work_tree(env, tmp_path / "clean-src", hub.repo_url("alice", "clean"))
    rows, stored = _rows(hub), _stored(hub)

    # Every pack is younger than the default grace (two weeks): nothing is touched.
    figures = _gc(hub)
    assert figures["alice/song"]["objects"] == 0 and _rows(hub) == rows

    # A push in flight (its ledger row, written before it lists the packs): gc stands down.
    import time

    from musehub.protocol import dbops
    from musehub.protocol.records import DELETED, STORING
    from musehub.protocol.repostore import pack_key

    repo_id, owner_id = _ids(hub, "alice", "song")
    key = pack_key(repo_id, "pack-inflight")
    _sql(
        hub,
        lambda s: dbops.defer_deletion(
            s, "inflight", repo_id, owner_id, key, time.time() + 3600, STORING
        ),
    )
    r = musehub(hub, "gc", "--grace", "0")
    assert "alice/song: postponed (a push is in progress)" in r.stdout, r.stdout
    assert _rows(hub) == rows
    _sql(hub, lambda s: dbops.set_deferred_state(s, "inflight", DELETED))

    # A dry run says what would go and changes nothing.
    dry = _gc(hub, "--grace", "0", "--dry-run")
    assert dry["alice/song"]["objects"] == 16 and dry["alice/song"]["bytes"] > 0
    assert dry["alice/clean"]["objects"] == 0
    assert _rows(hub) == rows and _stored(hub) == stored

    done = _gc(hub, "--grace", "0")
    assert done["alice/song"] == dry["alice/song"]
    assert done["alice/song"]["after"] < done["alice/song"]["before"]
    assert done["alice/clean"]["objects"] == 0
    assert _rows(hub) != rows
    # The replaced packs go with the sweep (after its grace): storage shrinks by the figure.
    wait_until(lambda: _stored(hub)[1] < stored[1], 60, "the replaced packs to be swept")

    # Nothing reachable was lost: fresh clones of every branch and tag fsck clean.
    assert clone_and_fsck(env, hub.repo_url("alice", "song"), tmp_path / "c1") == files
    muse(env, "checkout", "keep", cwd=tmp_path / "c1")
    muse(env, "checkout", "v1", cwd=tmp_path / "c1")
    muse(env, "fsck", cwd=tmp_path / "c1")
    assert clone_and_fsck(env, hub.repo_url("alice", "clean"), tmp_path / "c2")

    # Once more: nothing left to drop.
    again = _gc(hub, "--grace", "0", "--repo", "alice/song")
    assert list(again) == ["alice/song"] and again["alice/song"]["objects"] == 0

    # A push on top (its objects rest on what gc kept) and a clone still work.
    add_commit(env, src, "m4")
    muse(env, "push", "origin", "main", cwd=src)
    clone_and_fsck(env, hub.repo_url("alice", "song"), tmp_path / "c3")


def test_gc_fills_a_hole(tmp_path: Path, hub: Any) -> None:
    """A ref that reaches what gc dropped (what a push that carried no objects and lost
    the race would leave): the next gc puts the replaced packs back, the clone is whole."""
    from muse.core.repo import Repository
    from musehub.db import Ref

    alice = hub.create_user("alice")
    hub.create_repo("alice", "song")
    env = user_env(tmp_path, alice)
    src = work_tree(env, tmp_path / "src", hub.repo_url("alice", "song"))
    _garbage(env, src)
    tip = Repository(str(src)).refs.read("refs/heads/feature")
    assert tip is not None
    assert _gc(hub, "--grace", "0")["alice/song"]["objects"] == 16
    repo_id, _ = _ids(hub, "alice", "song")
    _sql(hub, lambda s: s.add(Ref(repo_id=repo_id, name="refs/heads/late", target=tip.hex())))
    r = musehub(hub, "gc", "--grace", "0")
    assert re.search(r"restored \d+ replaced packs", r.stdout), r.stdout
    dest = tmp_path / "clone"
    clone_and_fsck(env, hub.repo_url("alice", "song"), dest)
    muse(env, "checkout", "late", cwd=dest)
    muse(env, "fsck", cwd=dest)
    # Whole again: the next run collects as before (the hole's objects are reachable now).
    assert _gc(hub, "--grace", "0")["alice/song"]["objects"] < 16


def test_a_push_without_objects_is_fenced_while_it_runs(tmp_path: Path, hub: Any) -> None:
    """A branch created at a commit the hub has carries no objects but reads the packs: it
    writes a storing ledger row before that (gc stands down while one is open) and its
    transaction, or its refusal, ends it, so gc is not held up afterwards."""
    from musehub.db.models import DeferredDeletion
    from musehub.protocol import dbops

    alice = hub.create_user("alice")
    hub.create_repo("alice", "song")
    env = user_env(tmp_path, alice)
    src = work_tree(env, tmp_path / "src", hub.repo_url("alice", "song"))
    muse(env, "branch", "light", cwd=src)
    muse(env, "push", "origin", "light", cwd=src)  # no objects: the hub has them all
    repo_id, _ = _ids(hub, "alice", "song")

    def fences(s: Any) -> list[tuple[str, str]]:
        rows = s.query(DeferredDeletion.key, DeferredDeletion.state).all()
        return [(k, st) for k, st in rows if f"repos/{repo_id}/fences/" in k]

    done = _sql(hub, fences)
    assert done and all(state == "deleted" for _, state in done)
    # refused by the hub (a branch light/x cannot sit beside light): ended all the same
    r = muse(env, "push", "origin", "main:light/x", cwd=src, check=False)
    assert r.returncode != 0 and "light" in r.stderr, r.stderr
    rows = _sql(hub, fences)
    assert len(rows) == 2 and all(state == "deleted" for _, state in rows)
    assert _sql(hub, lambda s: dbops.pushes_in_flight(s, repo_id, time.time())) == 0
    out = musehub(hub, "gc", "--grace", "0")
    assert out.returncode == 0 and "postponed" not in out.stdout, out.stdout


def test_gc_refuses_bad_input(tmp_path: Path, hub: Any) -> None:
    r = musehub(hub, "gc", "--repo", "nobody/nothing")
    assert r.returncode == 3 and r.stderr.startswith("musehub: error: ") and "nobody" in r.stderr
    r = musehub(hub, "gc", "--grace", "-5")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--grace" in r.stderr
    r = musehub(hub, "gc", "--repo", "no-slash")
    assert r.returncode == 2 and "OWNER/SLUG" in r.stderr


@pytest.mark.parametrize("backend", ["sqlite+local", "postgres+s3"])
def test_gc_under_load(
    tmp_path: Path, start_hub: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    """gc again and again while pushes (commits, ref-only branch creations and deletions,
    force pushes) and clones run: no push fails, every clone fscks clean, and gc still
    drops the garbage of the repositories."""
    hub = start_backend(tmp_path, start_hub, backend, request, workers=2)
    alice = hub.create_user("alice")
    env = user_env(tmp_path, alice)
    names = ["r0", "r1"]
    trees = {}
    for n in names:
        hub.create_repo("alice", n)
        trees[n] = work_tree(env, tmp_path / f"src-{n}", hub.repo_url("alice", n))
        _garbage(env, trees[n])

    errors: list[str] = []
    stop = threading.Event()
    dropped = [0]

    def guard(fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(f"{fn.__name__}: {e}")
                stop.set()

        return run

    def pusher(n: str) -> Any:
        def push() -> None:
            root = trees[n]
            for i in range(10):
                if stop.is_set():
                    return
                add_commit(env, root, f"p{i}", files=2, size=2000)
                muse(env, "push", "origin", "main", cwd=root)
                # ref-only pushes: a branch created at a commit the hub has, then deleted
                muse(env, "push", "origin", f"main:side{i}", cwd=root)
                muse(env, "push", "--delete", "origin", f"side{i}", cwd=root)
                if i % 3 == 2:  # a force push leaves garbage for the next round of gc
                    muse(env, "reset", "--hard", "HEAD~1", cwd=root)
                    add_commit(env, root, f"q{i}", files=1, size=2000)
                    muse(env, "push", "-f", "origin", "main", cwd=root)

        push.__name__ = f"push-{n}"
        return push

    def cloner(n: str) -> Any:
        def clone() -> None:
            for i in range(6):
                if stop.is_set():
                    return
                clone_and_fsck(env, hub.repo_url("alice", n), tmp_path / f"clone-{n}-{i}")

        clone.__name__ = f"clone-{n}"
        return clone

    def collector() -> None:
        while not stop.is_set():
            figures = _gc(hub, "--grace", "0")
            dropped[0] += sum(f["objects"] for f in figures.values())

    workers = [threading.Thread(target=guard(f(n))) for n in names for f in (pusher, cloner)]
    gc_thread = threading.Thread(target=guard(collector))
    gc_thread.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    gc_thread.join()
    assert not errors, errors
    # A last run with nothing going on collects whatever the busy rounds postponed.
    dropped[0] += sum(f["objects"] for f in _gc(hub, "--grace", "0").values())
    assert dropped[0] > 0
    for n in names:
        files = {p.name for p in trees[n].iterdir() if p.name != ".muse"}
        assert clone_and_fsck(env, hub.repo_url("alice", n), tmp_path / f"final-{n}") == files
