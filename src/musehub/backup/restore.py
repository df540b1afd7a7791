"""Restoring a backup onto a new, empty hub (the format: ``musehub.backup``).

The whole backup is checked first (every file's size and SHA-256, every row a JSON object,
every pack the rows name present), so a damaged one is refused before anything is written.
Then the objects are stored, then every row goes in one transaction with the ids it had
(and the sequences are set past them): if that fails, it rolls back and the objects stored
are deleted again, so the hub is as empty as before and the restore can be run again. The
schema is the backup's revision while the rows go in, then the newest migrations run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError

from musehub.backup import (
    FORMAT,
    LEDGER,
    MANIFEST,
    VERSION,
    BackupError,
    Summary,
    file_digest,
    hub_tables,
    id_column,
    pg_sequence,
    sqlite_autoincrement,
)

if TYPE_CHECKING:
    from musehub.db import Database
    from musehub.storage import Storage

_TABLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
BATCH = 1000


@dataclass
class Manifest:
    root: Path
    revision: str
    tables: list[dict[str, Any]]
    sequences: dict[str, int]
    objects: list[dict[str, Any]]


def verify(src: str) -> Manifest:
    """Read ``src``'s manifest and check every file it names (size and SHA-256) and every
    row (JSON objects, as many as said, packs with their objects), before anything is
    written anywhere. BackupError says the first thing wrong."""
    from musehub.storage import InvalidKey, check_key

    root = Path(src)
    if not root.is_dir():
        raise BackupError(f"{src} is not a directory (a backup is one)")
    try:
        raw = json.loads((root / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BackupError(f"{src} has no {MANIFEST}: not a backup, or an unfinished one") from None
    except (ValueError, UnicodeDecodeError):
        raise BackupError(f"{src}/{MANIFEST} is not valid JSON (damaged)") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise BackupError(f"{src}/{MANIFEST} is not a MuseHub backup manifest")
    if not isinstance(raw.get("version"), int) or raw["version"] > VERSION:
        raise BackupError(
            f"{src} is backup format {raw.get('version')!r}; this MuseHub reads {VERSION}: "
            "restore it with the MuseHub version that made it"
        )
    try:
        m = Manifest(
            root,
            str(raw["schema_revision"]),
            list(raw["tables"]),
            {str(k): int(v) for k, v in dict(raw.get("sequences") or {}).items()},
            list(raw["objects"]),
        )
        names = [str(t["name"]) for t in m.tables]
        keys = [check_key(str(o["key"])) for o in m.objects]
    except (KeyError, TypeError, ValueError, InvalidKey) as e:
        raise BackupError(f"{src}/{MANIFEST} is malformed ({type(e).__name__}: {e})") from None
    _check_revision(m.revision)
    if len(set(names)) != len(names) or not all(_TABLE_RE.fullmatch(n) for n in names):
        raise BackupError(f"{src}/{MANIFEST} names bad or repeated tables")
    if len(set(keys)) != len(keys) or not all(k.startswith("repos/") for k in keys):
        raise BackupError(f"{src}/{MANIFEST} names bad or repeated objects")
    for t in m.tables:
        t["file"] = f"tables/{t['name']}.jsonl"  # never a path the manifest chose
        _check_file(root, t["file"], t)
        count = sum(1 for _ in _rows(m, t))
        if count != t.get("rows"):
            raise BackupError(f"{t['file']} holds {count} rows, the manifest says {t.get('rows')}")
    for o in m.objects:
        _check_file(root, f"objects/{o['key']}", o)
    _check_rows_have_objects(m, set(keys))
    return m


def _check_revision(revision: str) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from musehub.db.migrate import alembic_config

    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        raise BackupError(
            f"the backup's schema revision {revision!r} is unknown to this MuseHub (made by a "
            "newer version?): restore it with that version or a later one"
        ) from None


def _check_file(root: Path, rel: str, entry: dict[str, Any]) -> None:
    try:
        size, sha256 = file_digest(root / rel)
    except FileNotFoundError:
        raise BackupError(f"the backup lacks {rel} (incomplete)") from None
    except IsADirectoryError:
        raise BackupError(f"the backup's {rel} is a directory") from None
    if size != entry.get("bytes") or sha256 != entry.get("sha256"):
        raise BackupError(
            f"{rel} does not match the manifest ({size} bytes, {entry.get('bytes')} expected; "
            "checksum differs): the backup is damaged"
        )


def _rows(m: Manifest, table: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with open(m.root / table["file"], "rb") as f:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                row = None
            if not isinstance(row, dict) or not all(isinstance(k, str) for k in row):
                raise BackupError(f"{table['file']} line {n} is not a JSON object")
            yield row


def _check_rows_have_objects(m: Manifest, keys: set[str]) -> None:
    """Every pack the packs rows and the ledger rows name is in the backup, with its index."""
    from musehub.protocol.repostore import pack_key

    for t in m.tables:
        for row in _rows(m, t) if t["name"] in ("packs", LEDGER) else ():
            if t["name"] == "packs":
                repo_id, name = row.get("repo_id"), row.get("name")
                if not isinstance(repo_id, int) or not isinstance(name, str):
                    raise BackupError(f"{t['file']}: a packs row without repo_id and name")
                wanted = [pack_key(repo_id, name, ".idx"), pack_key(repo_id, name)]
            else:
                key = str(row.get("key"))
                wanted = [key, key.removesuffix(".pack") + ".idx"]
            for key in wanted:
                if key not in keys:
                    raise BackupError(f"the backup's {t['name']} rows name {key}, which it lacks")


def restore(m: Manifest, db: Database, storage: Storage, where: str) -> Summary:
    """Bring the empty hub (``db``, ``storage``) to the state of the verified backup ``m``.

    The objects go first, then every row in one transaction (then the sequences): if
    anything fails the transaction rolls back and the uploaded objects are deleted again, so
    the hub is left empty and the restore can be run again."""
    from musehub.db.migrate import current_revision, upgrade

    revision = current_revision(db)
    if revision is None:
        upgrade(db, m.revision)  # the backup's schema; the newest migrations after the rows
    elif revision != m.revision:
        raise BackupError(
            f"the database {where} is at schema revision {revision}, the backup at "
            f"{m.revision}: restore into a new, empty database",
            exists=True,
        )
    with db.engine.connect() as conn:
        _check_empty(conn, where)
    storage.check()
    if storage.list("repos/"):
        raise BackupError(
            f"the hub's storage ({storage.name}) already holds repositories: restore needs a "
            "new, empty hub (a new bucket or data directory)",
            exists=True,
        )
    uploaded: list[str] = []
    try:
        for o in m.objects:
            storage.put_file(o["key"], str(m.root / "objects" / o["key"]))
            uploaded.append(o["key"])
        with db.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the write lock throughout
            _check_empty(conn, where)
            summary = _insert(conn, db.dialect, m)
    except BaseException as e:
        for key in uploaded:
            try:
                storage.delete(key)
            except Exception:  # noqa: BLE001 - best effort; the sweep removes orphans too
                pass
        if isinstance(e, IntegrityError | DataError):
            first = str(e.orig).strip().splitlines()[0] if str(e.orig).strip() else ""
            raise BackupError(
                f"the database refused the backup's rows ({type(e.orig).__name__}: {first}); "
                "nothing was restored"
            ) from None
        raise
    upgrade(db)
    summary.objects = len(m.objects)
    summary.bytes = sum(int(o["bytes"]) for o in m.objects)
    return summary


def _check_empty(conn: Connection, where: str) -> None:
    found = []
    for table in hub_tables(conn):
        n = conn.execute(select(func.count()).select_from(table)).scalar_one()
        if n:
            found.append(f"{n} {table.name}")
    if found:
        raise BackupError(
            f"the hub {where} is not empty ({', '.join(found)}): restore needs a new, empty hub",
            exists=True,
        )


def _insert(conn: Connection, dialect: str, m: Manifest) -> Summary:
    """Every backed-up row, parents before children (the target's order of its tables)."""
    schema = hub_tables(conn)
    by_name = {t.name: t for t in schema}
    for t in m.tables:
        if t["name"] not in by_name:
            raise BackupError(f"the backup has a table {t['name']!r} this schema lacks")
    entries = {t["name"]: t for t in m.tables}
    summary = Summary()
    for table in schema:
        entry = entries.get(table.name)
        if entry is None:
            continue
        batch: list[dict[str, Any]] = []
        for row in _rows(m, entry):
            unknown = set(row) - set(table.c.keys())
            if unknown:
                raise BackupError(
                    f"{entry['file']}: table {table.name} has no column {min(unknown)}"
                )
            batch.append(row)
            if len(batch) >= BATCH:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
        summary.tables[table.name] = int(entry["rows"])
    _set_sequences(conn, dialect, schema, m.sequences)
    return summary


def _set_sequences(
    conn: Connection, dialect: str, schema: list[Table], recorded: dict[str, int]
) -> None:
    """Ids continue after the highest the source handed out (PostgreSQL's sequences do not
    move when rows are inserted with their ids; SQLite's AUTOINCREMENT keeps a high mark)."""
    for table in schema:
        column = id_column(table)
        if column is None:
            continue
        high = conn.execute(select(func.max(table.c[column]))).scalar() or 0
        high = max(int(high), recorded.get(table.name, 0))
        if dialect == "postgresql":
            seq = pg_sequence(conn, table, column)
            if seq is not None:
                conn.execute(
                    text("SELECT setval(:s, :v, :called)"),
                    {"s": seq, "v": max(high, 1), "called": high > 0},
                )
        elif dialect == "sqlite" and high and sqlite_autoincrement(conn, table.name):
            conn.execute(text("DELETE FROM sqlite_sequence WHERE name = :t"), {"t": table.name})
            conn.execute(
                text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :v)"),
                {"t": table.name, "v": high},
            )
