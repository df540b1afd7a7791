"""The hub's database: models, :class:`Database` (engine + sessions) and migrations.

``Database(url)`` accepts any SQLAlchemy URL; two are supported and tested:

- SQLite (``sqlite:///path``, the embedded default): WAL journal, ``busy_timeout``, foreign
  keys on. A session opens its transaction with ``BEGIN IMMEDIATE`` (it takes the write lock
  up front), so a read-then-write such as a ref compare-and-swap never fails half way with
  "database is locked"; concurrent writers queue on the busy timeout instead. Pass
  ``session(readonly=True)`` for a read-only session that does not take the write lock.
- PostgreSQL (``postgresql+psycopg://user@host:port/db``): plain transactions; use
  ``SELECT ... FOR UPDATE`` (``with_for_update()``) for compare-and-swap.

``with db.session() as s:`` commits when the block ends normally and rolls back on an
exception. Sessions are synchronous: call them from a thread pool in async routes
(``HubState.run`` in ``musehub.app``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from musehub.db.models import (
    Base,
    Collaborator,
    DeferredDeletion,
    Lease,
    Pack,
    Ref,
    Repo,
    Token,
    User,
    now,
)

__all__ = [
    "Base",
    "Collaborator",
    "Database",
    "DeferredDeletion",
    "Lease",
    "Pack",
    "Ref",
    "Repo",
    "Token",
    "User",
    "now",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 5


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "check_same_thread": False,
            }
        elif self.dialect == "postgresql":
            kwargs.update(pool_size=pool_size, max_overflow=2 * pool_size, pool_pre_ping=True)
            # A database host that does not answer fails a request in seconds, not minutes.
            kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readonly_sessions = sessionmaker(
            self.engine.execution_options(muse_readonly=True), expire_on_commit=False
        )

    @contextmanager
    def session(self, readonly: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        maker = self._readonly_sessions if readonly else self._sessions
        with maker() as s:
            try:
                yield s
                if readonly:
                    s.rollback()
                else:
                    s.commit()
            except BaseException:
                s.rollback()
                raise

    def ping(self) -> None:
        """``SELECT 1``: raises if the database cannot be used right now (for /healthz)."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (safe with several processes at once)."""
        from musehub.db.migrate import upgrade

        upgrade(self)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get("muse_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
