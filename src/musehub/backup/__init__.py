"""``musehub backup`` and ``musehub restore``: a hub as a portable directory, and back.

A backup directory (format 1)::

    manifest.json             written last: a directory without one is no backup
    tables/<table>.jsonl      the rows, one JSON object per line (columns by name), key order
    objects/<storage key>     the packs and indexes the rows name

``manifest.json`` names the schema revision (alembic), the source's database and storage
kinds, every table (rows, bytes, SHA-256 of its file), the id high-water mark of each table
with a sequence (ids are never handed out twice, as on the source) and every object (key,
bytes, SHA-256). Nothing in it depends on the source's database or storage: a backup of
SQLite and local files restores onto PostgreSQL and S3, and back.

What is in it: every table but ``alembic_version`` and ``leases`` (housekeeping turns), the
objects of every ``packs`` row, and of the ledger (``deferred_deletions``) only the packs a
repack or gc replaced and keeps for their grace (state ``scheduled``, with those packs, as
far as they are still stored when copied): gc may need them back to fill a hole, and the
restored hub's sweep deletes them when they are due, as the source's would have. Uploads,
bundles and packs being stored are work in progress of the source, not its state: neither
their rows nor their keys. Not the local pack cache, not the secret key: tokens are kept as
their SHA-256 only, so they work on the restored hub, which makes its own secret key; what
the old key signed (presigned URLs, web sign-in cookies) is void there. The rows do hold
token hashes and private repositories: a backup is written 0700/0600 and is to be kept as
carefully as the hub's data directory.

``snapshot`` writes backups (and says why they are consistent while the hub serves),
``restore`` checks and restores them; this module holds what both need.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, text
from sqlalchemy.engine import Connection

from muse.core.lockfile import fsync_file

FORMAT = "musehub-backup"
VERSION = 1
MANIFEST = "manifest.json"
#: Not the hub's state: the schema's own bookkeeping, and who does housekeeping now.
SKIPPED_TABLES = frozenset({"alembic_version", "leases"})
#: The ledger, of which only the replaced packs in their grace are kept.
LEDGER = "deferred_deletions"
CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore that cannot go on; ``exists``: refused because the destination
    (a backup directory, a hub) is not empty."""

    def __init__(self, message: str, exists: bool = False) -> None:
        super().__init__(message)
        self.exists = exists


@dataclass
class Summary:
    tables: dict[str, int] = field(default_factory=dict)  # rows per table
    objects: int = 0
    bytes: int = 0

    def describe(self) -> str:
        t = self.tables
        size = (
            f"{self.bytes / 1024:.1f} KiB"
            if self.bytes < 1 << 20
            else f"{self.bytes / (1 << 20):.1f} MiB"
        )
        return (
            f"{t.get('users', 0)} users, {t.get('repos', 0)} repositories, "
            f"{t.get('refs', 0)} refs, {self.objects} objects ({size})"
        )


def hub_tables(conn: Connection) -> list[Table]:
    """The tables as the database has them (not as this code's models say: a backup of an
    older schema restores into that schema), parents before children."""
    md = MetaData()
    md.reflect(conn)
    return [t for t in md.sorted_tables if t.name not in SKIPPED_TABLES]


def id_column(table: Table) -> str | None:
    """The single integer primary key column (the one a sequence feeds), if any."""
    cols = list(table.primary_key.columns)
    if len(cols) == 1 and cols[0].type.python_type is int:
        return str(cols[0].name)
    return None


def pg_sequence(conn: Connection, table: Table, column: str) -> str | None:
    return conn.execute(
        text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column}
    ).scalar()


def sqlite_autoincrement(conn: Connection, table: str) -> bool:
    """Whether SQLite keeps a high-water mark for ``table`` (``sqlite_sequence``)."""
    sql = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    ).scalar()
    return "AUTOINCREMENT" in (sql or "").upper()


class HashingWriter:
    """A new file written through a temp name, hashed and counted, synced, then renamed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".part")
        self.size = 0
        self._hash = hashlib.sha256()
        self._f: Any = None

    def __enter__(self) -> HashingWriter:
        self._f = open(self.tmp, "wb")
        return self

    def write(self, data: bytes) -> None:
        self._f.write(data)
        self._hash.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._f.close()
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        fsync_file(str(self.tmp))
        os.replace(self.tmp, self.path)


def file_digest(path: Path) -> tuple[int, str]:
    """(bytes, SHA-256) of a file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()
