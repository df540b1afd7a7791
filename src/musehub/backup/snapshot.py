"""Writing a backup while the hub serves (the format: ``musehub.backup``).

Why it is consistent. The rows are read in one read-only transaction (SQLite: one deferred
transaction, a WAL snapshot; PostgreSQL: REPEATABLE READ READ ONLY), which ends before the
objects are copied, so no lock or snapshot is held for the copy's hours. Packs are immutable
and named by checksum: a copy made later has the bytes the rows meant, unless the pack was
deleted meanwhile. Deleting is deferred: a repack or gc that replaces a pack keeps the old
one in storage under a ledger row for ``REPACK_GRACE_S`` (or ``sweep_grace_s`` when that is
shorter: the sweep takes ledger rows older than that as due), so a copy within that time
finds every pack its rows name. A deleted repository's objects go at once; a pack gone for
either reason makes the backup take a new snapshot (keeping what it copied, since names never
change meaning), :data:`ATTEMPTS` times, then fail naming the pack.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection

from muse.core.lockfile import fsync_dir
from musehub.backup import (
    CHUNK,
    FORMAT,
    LEDGER,
    MANIFEST,
    VERSION,
    BackupError,
    HashingWriter,
    Summary,
    hub_tables,
    id_column,
    pg_sequence,
    sqlite_autoincrement,
)

if TYPE_CHECKING:
    from musehub.db import Database
    from musehub.storage import Storage

#: Snapshots taken when packs vanish between the rows and the copy, before giving up.
ATTEMPTS = 3
#: The ledger rows kept: replaced packs (``.pack``; the ``.idx`` beside it goes along).
RETIRED_KEY = re.compile(r"repos/[0-9]+/packs/[A-Za-z0-9_][A-Za-z0-9._-]*\.pack")


def backup(db: Database, storage: Storage, dest: str) -> Summary:
    """Write a backup of the hub (``db`` + ``storage``) into the new directory ``dest``."""
    root = Path(dest)
    created = _new_backup_dir(root)
    try:
        return _write_backup(db, storage, root)
    except BaseException:
        _discard(root, created)
        raise


def _new_backup_dir(root: Path) -> bool:
    """Make ``root`` (0700); True if it was created, False if it existed empty."""
    if root.exists() or root.is_symlink():
        if not root.is_dir():
            raise BackupError(f"{root} exists and is not a directory", exists=True)
        if any(root.iterdir()):
            raise BackupError(
                f"{root} is not empty: a backup goes into a new or empty directory", exists=True
            )
        return False
    try:
        root.mkdir(mode=0o700)
    except FileNotFoundError:
        raise BackupError(f"cannot create {root}: its parent directory does not exist") from None
    return True


def _discard(root: Path, created: bool) -> None:
    """Remove what a failed backup wrote (the directory too, if it made it)."""
    if created:
        shutil.rmtree(root, ignore_errors=True)
        return
    for p in root.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


@dataclass
class _Snapshot:
    revision: str
    tables: list[dict[str, Any]]  # the manifest's entries of the files written
    sequences: dict[str, int]
    keys: list[str]  # the storage keys the packs rows name
    #: ledger rows of replaced packs, written after the copy (None: a schema without one)
    retired: list[dict[str, Any]] | None


def _write_backup(db: Database, storage: Storage, root: Path) -> Summary:
    from musehub.storage import NotFound

    copied: dict[str, tuple[int, str]] = {}  # key -> (bytes, sha256), across attempts
    objects = root / "objects"
    for attempt in range(1, ATTEMPTS + 1):
        shutil.rmtree(root / "tables", ignore_errors=True)
        snap = _snapshot(db, root / "tables")
        missing = []
        for key in snap.keys:
            if key not in copied:
                try:
                    copied[key] = _copy_out(storage, key, objects / key)
                except NotFound:
                    missing.append(key)
        if not missing:
            break
        if attempt == ATTEMPTS:
            more = f" ({len(missing)} keys)" if len(missing) > 1 else ""
            raise BackupError(
                f"{missing[0]} (named by the database) is not in storage, in {ATTEMPTS} "
                f"snapshots{more}: the store has lost it, or repositories are deleted "
                "faster than they are copied"
            )
    keys = set(snap.keys)
    retired = []
    for row in snap.retired or []:  # best effort: one swept meanwhile was garbage anyway
        pair = [row["key"], row["key"].removesuffix(".pack") + ".idx"]
        try:
            for key in pair:
                if key not in copied:
                    copied[key] = _copy_out(storage, key, objects / key)
        except NotFound:
            continue
        retired.append(row)
        keys.update(pair)
    if snap.retired is not None:
        snap.tables.append(_write_rows(root / "tables", LEDGER, retired))
    for key in sorted(set(copied) - keys):  # objects of earlier attempts' snapshots
        (objects / key).unlink()
        del copied[key]
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": int(time.time()),
        "schema_revision": snap.revision,
        "source": {"database": db.dialect, "storage": storage.name},
        "tables": snap.tables,
        "sequences": snap.sequences,
        "objects": [
            {"key": k, "bytes": copied[k][0], "sha256": copied[k][1]} for k in sorted(keys)
        ],
    }
    with HashingWriter(root / MANIFEST) as w:
        w.write((json.dumps(manifest, indent=1) + "\n").encode())
    fsync_dir(str(root))
    return Summary(
        {t["name"]: t["rows"] for t in snap.tables},
        len(keys),
        sum(b for b, _ in copied.values()),
    )


def _snapshot(db: Database, out: Path) -> _Snapshot:
    """Every table's rows into ``out/<table>.jsonl`` (the ledger's kept in memory, to be
    written once its packs are copied), from one read-only transaction."""
    from musehub.protocol.records import SCHEDULED

    out.mkdir(mode=0o700, parents=True)
    tables: list[dict[str, Any]] = []
    keys: set[str] = set()
    retired: list[dict[str, Any]] | None = None
    with _read_snapshot(db) as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        schema = hub_tables(conn)
        for table in schema:
            if table.name == LEDGER:
                q = _ordered(table).where(table.c.state == SCHEDULED)
                rows = _read_rows(conn, table, q)
                retired = [r for r in rows if RETIRED_KEY.fullmatch(str(r["key"]))]
                continue
            rows = _read_rows(conn, table, _ordered(table))
            if table.name == "packs":
                rows = _noting_keys(rows, keys)
            tables.append(_write_rows(out, table.name, rows))
        sequences = _read_sequences(conn, db.dialect, schema)
    return _Snapshot(str(revision), tables, sequences, sorted(keys), retired)


def _noting_keys(rows: Iterator[dict[str, Any]], keys: set[str]) -> Iterator[dict[str, Any]]:
    """The packs rows, passed on; each one's storage keys noted in ``keys``."""
    from musehub.protocol.repostore import pack_key

    for r in rows:
        keys.update(pack_key(r["repo_id"], r["name"], s) for s in (".idx", ".pack"))
        yield r


@contextmanager
def _read_snapshot(db: Database) -> Iterator[Connection]:
    """One read-only transaction that sees one committed state throughout."""
    if db.dialect == "postgresql":
        engine = db.engine.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
    else:  # SQLite: a deferred BEGIN (musehub.db), a WAL snapshot from the first read on
        engine = db.engine.execution_options(muse_readonly=True)
    with engine.connect() as conn, conn.begin() as tx:
        yield conn
        tx.rollback()


def _ordered(table: Table) -> Any:
    return select(table).order_by(*(table.primary_key.columns or table.columns))


def _read_rows(conn: Connection, table: Table, query: Any) -> Iterator[dict[str, Any]]:
    for row in conn.execution_options(yield_per=1000).execute(query).mappings():
        yield {c: _plain(table.name, c, v) for c, v in row.items()}


def _plain(table: str, column: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    raise BackupError(f"{table}.{column}: cannot back up a value of type {type(value).__name__}")


def _write_rows(out: Path, name: str, rows: Any) -> dict[str, Any]:
    """Write one table's file; its manifest entry."""
    n = 0
    with HashingWriter(out / f"{name}.jsonl") as w:
        for row in rows:
            w.write((json.dumps(row, ensure_ascii=False) + "\n").encode())
            n += 1
    fsync_dir(str(out))
    return {
        "name": name,
        "file": f"tables/{name}.jsonl",
        "rows": n,
        "bytes": w.size,
        "sha256": w.sha256,
    }


def _read_sequences(conn: Connection, dialect: str, schema: list[Table]) -> dict[str, int]:
    """The highest id each table with a sequence has handed out (deleted rows count)."""
    out: dict[str, int] = {}
    for table in schema:
        column = id_column(table)
        if column is None:
            continue
        high = int(conn.execute(select(func.max(table.c[column]))).scalar() or 0)
        if dialect == "postgresql":
            seq = pg_sequence(conn, table, column)
            if seq is None:
                continue
            last, called = conn.execute(text(f"SELECT last_value, is_called FROM {seq}")).one()
            high = max(high, int(last) if called else int(last) - 1)
        elif dialect == "sqlite" and sqlite_autoincrement(conn, table.name):
            seq_high = conn.execute(
                text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table.name}
            ).scalar()
            high = max(high, int(seq_high or 0))
        out[table.name] = high
    return out


def _copy_out(storage: Storage, key: str, path: Path) -> tuple[int, str]:
    """Copy one stored object into the backup; (bytes, sha256). Raises NotFound."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    src = storage.open_read(key)
    try:
        with HashingWriter(path) as w:
            while chunk := src.read(CHUNK):
                w.write(chunk)
    finally:
        src.close()
    return w.size, w.sha256
