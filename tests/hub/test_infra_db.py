"""Migrations and the Database wrapper, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fixtures import PostgresCluster, hub_env
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from musehub.db import Collaborator, Database, DeferredDeletion, Pack, Ref, Repo, Token, User
from musehub.db.migrate import current_revision, head_revision

TABLES = {"users", "tokens", "repos", "collaborators", "refs", "packs", "deferred_deletions"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    pg: PostgresCluster = request.getfixturevalue("postgres")
    return pg.new_database()


def test_upgrade_creates_schema_matching_models(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from musehub.db.models import Base

    db = Database(db_url)
    assert current_revision(db) is None
    db.upgrade()
    db.upgrade()  # idempotent
    assert current_revision(db) == head_revision()
    assert TABLES <= set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    db.dispose()


def test_constraints_and_cascades(db_url: str) -> None:
    db = Database(db_url)
    db.upgrade()
    with db.session() as s:
        u = User(username="alice")
        s.add(u)
        s.flush()
        r = Repo(owner_id=u.id, slug="song")
        s.add(r)
        s.flush()
        s.add_all(
            [
                Ref(repo_id=r.id, name="refs/heads/main", target="a" * 64),
                Pack(repo_id=r.id, name="p1", objects=3, blobs=1, bytes=100),
                DeferredDeletion(
                    id="up1", repo_id=r.id, user_id=u.id, key="k", state="storing", delete_after=1
                ),
                Collaborator(repo_id=r.id, user_id=u.id),
                Token(user_id=u.id, token_hash="h" * 64, scopes="read"),
            ]
        )
        repo_id = r.id
    for dup in (
        lambda: Repo(owner_id=u.id, slug="song"),
        lambda: Ref(repo_id=repo_id, name="refs/heads/main", target="b" * 64),
        lambda: User(username="alice"),
        lambda: Pack(repo_id=repo_id, name="p1"),
    ):
        with pytest.raises(IntegrityError), db.session() as s:
            s.add(dup())
    with pytest.raises(IntegrityError), db.session() as s:  # foreign keys enforced
        s.add(Ref(repo_id=99999, name="refs/heads/x", target="c" * 64))
    with db.session() as s:
        s.delete(s.get(Repo, repo_id))
    with db.session(readonly=True) as s:
        for model in (Ref, Pack, DeferredDeletion, Collaborator):
            assert s.execute(select(model)).first() is None, model
        assert s.execute(select(User)).scalar_one().username == "alice"
    db.dispose()


def test_session_rolls_back_on_error(db_url: str) -> None:
    db = Database(db_url)
    db.upgrade()
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(User(username="ghost"))
        s.flush()
        raise RuntimeError("boom")
    with db.session(readonly=True) as s:
        assert s.execute(select(User)).first() is None
    with db.session(readonly=True) as s:  # readonly sessions never commit
        s.add(User(username="nope"))
    with db.session(readonly=True) as s:
        assert s.execute(select(User)).first() is None
    db.dispose()


def test_concurrent_read_modify_write(db_url: str) -> None:
    """Many threads increment one value through read-then-write sessions: none is lost.

    On SQLite the session's BEGIN IMMEDIATE serialises writers; on PostgreSQL the test uses
    SELECT ... FOR UPDATE, as the protocol's compare-and-swap does.
    """
    db = Database(db_url)
    db.upgrade()
    with db.session() as s:
        u = User(username="c")
        s.add(u)
        s.flush()
        r = Repo(owner_id=u.id, slug="c")
        s.add(r)
        s.flush()
        s.add(Ref(repo_id=r.id, name="refs/heads/n", target=f"{0:064x}"))
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(10):
                with db.session() as s:
                    ref = s.execute(select(Ref).with_for_update()).scalar_one()
                    ref.target = f"{int(ref.target, 16) + 1:064x}"
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.session(readonly=True) as s:
        assert int(s.execute(select(Ref.target)).scalar_one(), 16) == 80
    db.dispose()


def test_wal_and_foreign_keys_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    db.dispose()


def test_many_processes_migrate_at_once(db_url: str, tmp_path: Path) -> None:
    """Several `musehub migrate` started together: all succeed, the schema is migrated once."""
    env = hub_env(tmp_path, 1, database=db_url if not db_url.startswith("sqlite") else "sqlite")
    env["MUSEHUB_DATABASE_URL"] = db_url
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "musehub", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(5)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        assert f"revision {head_revision()}" in out.decode()
    db = Database(db_url)
    assert current_revision(db) == head_revision()
    db.dispose()


def test_head_constant_matches_alembic() -> None:
    from musehub.db.migrate import HEAD

    assert HEAD == head_revision()


def test_repo_ids_are_never_reused(db_url: str) -> None:
    db = Database(db_url)
    db.upgrade()
    with db.session() as s:
        u = User(username="z")
        s.add(u)
        s.flush()
        r = Repo(owner_id=u.id, slug="a")
        s.add(r)
        s.flush()
        first = r.id
        s.delete(r)
    with db.session() as s:
        r = Repo(owner_id=u.id, slug="a")
        s.add(r)
        s.flush()
        assert r.id > first
    db.dispose()


def test_the_uploads_table_becomes_the_ledger_of_deferred_deletions(db_url: str) -> None:
    """0002 on a database with rows: the table, its column and each state get their names,
    a 'done' row split by what it was (a committed upload: still deleted; a pack: kept), and
    the sweep's query finds exactly the rows that were garbage before."""
    from musehub.db.migrate import upgrade
    from musehub.protocol import dbops

    db = Database(db_url)
    upgrade(db, "0001")
    old = [  # (id, key, state, expires_at)
        ("a", "repos/1/uploads/a.pack", "pending", 10),
        ("b", "repos/1/uploads/b.pack", "committing", 10),
        ("c", "repos/1/packs/pack-c.pack", "receiving", 10),
        ("d", "repos/1/bundles/tmp-d.pack", "bundle", 10),
        ("e", "repos/1/uploads/e.pack", "done", 10),
        ("f", "repos/1/packs/pack-f.pack", "done", 10),
        ("g", "repos/1/uploads/g.pack", "expired", 10),
        ("h", "repos/1/bundles/tmp-h.pack", "bundle", 99),
    ]
    with db.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO users (id, username, is_admin, created_at) VALUES (1, 'u', false, 0)")
        )
        conn.execute(
            text(
                "INSERT INTO repos (id, owner_id, slug, private, default_branch, created_at)"
                " VALUES (1, 1, 'r', false, 'main', 0)"
            )
        )
        for row_id, key, state, expires in old:
            conn.execute(
                text(
                    "INSERT INTO uploads (id, repo_id, user_id, key, state, created_at, expires_at)"
                    " VALUES (:id, 1, 1, :k, :s, 0, :e)"
                ),
                {"id": row_id, "k": key, "s": state, "e": expires},
            )
    db.upgrade()
    assert current_revision(db) == head_revision()
    tables = set(inspect(db.engine).get_table_names())
    assert "uploads" not in tables and "deferred_deletions" in tables
    with db.session(readonly=True) as s:
        got = {
            r.id: (r.key, r.state, r.delete_after)
            for r in s.execute(select(DeferredDeletion)).scalars()
        }
        due = dict(dbops.due_deletions(s, now=50))
    assert {k: v[1] for k, v in got.items()} == {
        "a": "awaiting_upload",
        "b": "verifying",
        "c": "storing",
        "d": "scheduled",
        "e": "scheduled",
        "f": "cancelled",
        "g": "deleted",
        "h": "scheduled",
    }
    assert all(got[k][0] == key and got[k][2] == exp for k, key, _, exp in old)
    # What the old sweep deleted at t=50 (live states, and done uploads), nothing else.
    assert set(due) == {"a", "b", "c", "d", "e"}
    with db.engine.connect() as conn:  # the migrated schema is the models' schema
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        from musehub.db.models import Base

        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    from alembic import command

    from musehub.db.migrate import alembic_config

    with db.engine.connect() as conn:  # and back: the old table, the old names
        command.downgrade(alembic_config(conn), "0001")
        conn.commit()
    with db.engine.connect() as conn:
        back = dict(conn.execute(text("SELECT id, state FROM uploads")).all())
    assert back == {row_id: state for row_id, _, state, _ in old}
    db.dispose()
