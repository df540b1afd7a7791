"""The hub's metadata tables (SQLAlchemy 2.0 declarative models).

Times are integer Unix seconds (UTC) everywhere: they compare the same way in SQLite and
PostgreSQL and need no time-zone handling. Object bytes never live here, only in storage.

The schema itself is created by the alembic migrations in ``musehub/migrations``; keep the
two in step (tests/hub/test_infra_db.py compares them).
"""

from __future__ import annotations

import time

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def now() -> int:
    return int(time.time())


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ix": "ix_%(table_name)s_%(column_0_name)s",
        }
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    #: A disabled user's tokens are refused (musehub.auth), its data kept.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Storage quota over the user's repositories (musehub.quota): NULL = the hub's
    #: user_quota_bytes, 0 = unlimited, else bytes.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Token(Base):
    """An API token. Only the SHA-256 of the token is stored; the token is shown once."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Comma-separated subset of read,write,admin (each implies the ones before it).
    scopes: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_used: Mapped[int | None] = mapped_column(BigInteger, default=None)

    user: Mapped[User] = relationship(lazy="joined")


class Repo(Base):
    __tablename__ = "repos"
    # Ids are never reused (SQLite would otherwise hand a deleted repository's id to the next
    # one): storage keys and caches are named by repository id.
    __table_args__ = (
        UniqueConstraint("owner_id", "slug", name="uq_repos_owner_slug"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(100))
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    default_branch: Mapped[str] = mapped_column(String(255), default="main")
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    #: Storage quota of this repository (musehub.quota): NULL = the hub's repo_quota_bytes,
    #: 0 = unlimited, else bytes.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)

    owner: Mapped[User] = relationship(lazy="joined")


class Collaborator(Base):
    """A user other than the owner who may write to a repository."""

    __tablename__ = "collaborators"

    repo_id: Mapped[int] = mapped_column(
        ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)


class Ref(Base):
    __tablename__ = "refs"
    __table_args__ = (UniqueConstraint("repo_id", "name", name="uq_refs_repo_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    #: 64 lower-case hex digits.
    target: Mapped[str] = mapped_column(String(64))


class Pack(Base):
    """A pack at rest in storage, named by its checksum; the order of ``id`` is push order."""

    __tablename__ = "packs"
    __table_args__ = (UniqueConstraint("repo_id", "name", name="uq_packs_repo_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    objects: Mapped[int] = mapped_column(BigInteger, default=0)
    blobs: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)


class DeferredDeletion(Base):
    """A storage key to delete after ``delete_after`` unless its state says otherwise: the
    ledger of uploads, packs being stored, bundles, manifests and replaced packs (the states
    are in ``musehub.protocol.records``). ``id`` is the upload id of a presigned upload."""

    __tablename__ = "deferred_deletions"
    __table_args__ = (Index("ix_deferred_deletions_state_delete_after", "state", "delete_after"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    delete_after: Mapped[int] = mapped_column(BigInteger)


class Lease(Base):
    """A housekeeping job (the periodic sweep) held by one hub process until ``expires_at``:
    several processes on one database take turns instead of doing the work at once."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[int] = mapped_column(BigInteger)
