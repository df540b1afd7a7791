"""Applying the alembic migrations programmatically (no alembic.ini needed).

Every hub process and every ``musehub`` command calls :func:`upgrade` at start. When several
start at once only one migrates at a time: PostgreSQL takes a session advisory lock, SQLite
an exclusive ``flock`` on ``<database file>.migrate.lock``; the others wait, then find the
schema at head and do nothing.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

if TYPE_CHECKING:
    from musehub.db import Database

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")
#: Arbitrary constant naming MuseHub's advisory lock ("muse" in ASCII).
PG_LOCK_ID = 0x6D757365
#: The newest revision in migrations/versions (a test checks it against alembic's head): a
#: database already there is recognised with one query, without importing alembic.
HEAD = "0004"


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _sqlite_file_lock(db: Database) -> Iterator[None]:
    path = make_url(db.url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        yield
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.abspath(path) + ".migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _at_head(db: Database) -> bool:
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).fetchall()
    except Exception:  # noqa: BLE001 - no table yet (or no database): not at head
        return False
    return [r[0] for r in rows] == [HEAD]


def upgrade(db: Database, revision: str = "head") -> None:
    """Run every pending migration up to ``revision``."""
    if revision == "head" and _at_head(db):
        return
    from alembic import command

    if db.dialect == "sqlite":
        with _sqlite_file_lock(db):
            if revision == "head" and _at_head(db):
                return
            with db.engine.connect() as conn:
                command.upgrade(alembic_config(conn), revision)
                conn.commit()
        return
    with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": PG_LOCK_ID})
            conn.commit()
        try:
            command.upgrade(alembic_config(conn), revision)
            conn.commit()
        finally:
            if db.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": PG_LOCK_ID})
                conn.commit()
