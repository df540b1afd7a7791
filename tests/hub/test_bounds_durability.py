"""A push is durable before it is visible: on local storage, the pack, its index and the
directory naming them are fsynced before the ref transaction commits.

Order can only be seen from inside the process, so this drives the hub's real receive code
(Receiver over RepoStore, SQLite, LocalStorage, a real pack) in-process and records every
``os.fsync`` (by inode) and ``os.replace`` next to the database's COMMITs (a SQLAlchemy
event). Wrapping the two os functions is the recording, not a stand-in: the calls still run.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
from proto_util import History
from sqlalchemy import event, select

from muse.wire.messages import RefUpdate
from musehub.api import create_repo
from musehub.config import load_settings
from musehub.db import Database, User
from musehub.protocol.receive import Receiver
from musehub.protocol.repostore import RepoStore, pack_key
from musehub.storage import open_storage


def test_pack_index_and_directory_are_synced_before_the_ref_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(env={"MUSEHUB_DATA_DIR": str(tmp_path / "data")})
    db = Database(settings.database_url)
    db.upgrade()
    storage = open_storage(settings)
    with db.session() as s:
        user = User(username="alice")
        s.add(user)
        s.flush()
        repo_id = create_repo(s, user, "song").id
        user_id = user.id
    store = RepoStore(settings, db, storage)

    h = History()
    tip = h.commit({"a.txt": b"one", "dir/b.txt": b"two"})
    pack = h.pack_of(h.reachable(tip))

    events: list[tuple[str, Any]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        real_fsync(fd)
        events.append(("fsync", (st.st_dev, st.st_ino)))

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        real_replace(src, dst, **kw)
        events.append(("replace", os.path.abspath(dst)))

    def on_commit(_conn: Any) -> None:
        events.append(("commit", None))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    event.listen(db.engine, "commit", on_commit)
    try:
        answer = Receiver(store, repo_id, user_id).receive(
            io.BytesIO(pack), [RefUpdate("refs/heads/main", None, tip)]
        )
    finally:
        event.remove(db.engine, "commit", on_commit)
    assert answer["updated"][0]["new"] == tip.hex()

    with db.session(readonly=True) as s:
        from musehub.db.models import Pack

        (name,) = s.execute(select(Pack.name).where(Pack.repo_id == repo_id)).scalars()
    pack_path = Path(storage.local_path(pack_key(repo_id, name)))  # type: ignore[attr-defined]
    idx_path = Path(storage.local_path(pack_key(repo_id, name, ".idx")))  # type: ignore[attr-defined]

    # the commit that made the push visible is the last one
    visible = max(i for i, e in enumerate(events) if e[0] == "commit")

    def inode(p: Path) -> tuple[int, int]:
        st = os.stat(p)
        return st.st_dev, st.st_ino

    def synced_before(key: tuple[int, int], after: int = -1) -> bool:
        return any(e == ("fsync", key) and after < i < visible for i, e in enumerate(events))

    assert synced_before(inode(pack_path)), events
    assert synced_before(inode(idx_path)), events
    # the directory entry: synced after the file was renamed into it, before the commit
    renamed = max(i for i, e in enumerate(events) if e == ("replace", str(pack_path)))
    assert renamed < visible
    assert synced_before(inode(pack_path.parent), after=renamed), events
    db.dispose()
