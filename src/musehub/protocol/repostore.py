"""Where a hub repository's objects rest: packs in object storage, a local cache, one reader.

A repository is the list of its packs (one ``packs`` row per accepted push) whose bytes live in
object storage at ``repos/<repo_id>/packs/<name>.pack`` (+ ``.idx``). A pack's name carries its
checksum and a random suffix, so a name always denotes the same bytes: every hub process keeps
an immutable local copy under ``<cache_dir>/packs/`` and reads objects there through
``PackFile``, with no per-object round trip to the database or to storage. Several processes on
several machines can share one database and one store because nothing cached ever changes.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from muse.core.pack.cache import BlockCache
from muse.core.pack.file import PackFile
from muse.core.pack.packset import PackList
from musehub.files import private_file
from musehub.protocol import dbops
from musehub.protocol.records import CANCELLED, DELETED, SCHEDULED, STORING, PackInfo

if TYPE_CHECKING:
    from musehub.config import Settings
    from musehub.db import Database
    from musehub.storage import Storage

log = logging.getLogger("musehub.protocol")

WORK_TTL_S = 3600  # how long a crashed push's half-stored pack may linger before the sweep
REPACK_AT = 16  # more packs than this in one repository: merge the smaller ones
REPACK_GRACE_S = 3 * 3600  # replaced packs stay this long: readers, and URLs handed out


def pack_key(repo_id: int, name: str, suffix: str = ".pack") -> str:
    return f"repos/{repo_id}/packs/{name}{suffix}"


def upload_key(repo_id: int, upload_id: str) -> str:
    return f"repos/{repo_id}/uploads/{upload_id}.pack"


def bundle_key(repo_id: int, name: str, suffix: str = ".pack") -> str:
    return f"repos/{repo_id}/bundles/{name}{suffix}"


#: The packs of one repository (newest first), as its ``packs`` rows list them.
PackReader = PackList


class RepoStore:
    """Packs of every repository: storage keys, the local cache, readers, the sweep."""

    def __init__(self, settings: Settings, db: Database, storage: Storage) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage
        base = Path(settings.cache_dir)
        self.cache_dir = base / "packs"
        self.tmp_dir = base / "tmp"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._present: set[str] = set()  # names known to be in the cache
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}
        self._repacking: set[int] = set()

    # ------------------------------------------------------------------------- database
    def pack_infos(self, repo_id: int) -> list[PackInfo]:
        with self.db.session(readonly=True) as s:
            return dbops.pack_infos(s, repo_id)

    # ---------------------------------------------------------------------------- cache
    def quarantine_dir(self) -> Path:
        """A private temp dir on the cache's file system (so accepted packs move by rename)."""
        return Path(tempfile.mkdtemp(prefix="q-", dir=self.tmp_dir))

    def cached_path(self, name: str) -> Path:
        return self.cache_dir / f"{name}.pack"

    def adopt(self, name: str, pack_path: Path) -> None:
        """Move an accepted pack (+ idx) from quarantine into the cache, idx first; the
        hub's user alone may read them (musehub.files)."""
        dest = self.cached_path(name)
        if dest.exists():
            return
        private_file(pack_path.with_suffix(".idx"))
        private_file(pack_path)
        os.replace(pack_path.with_suffix(".idx"), dest.with_suffix(".idx"))
        os.replace(pack_path, dest)

    def pack(self, repo_id: int, name: str, cache: BlockCache | None = None) -> PackFile:
        """A PackFile of a stored pack, downloading it into the cache on first use.

        A new PackFile per request (its index is a few MB at most, read in milliseconds), with
        the request's block cache: decompressed blocks then live as long as the request, so a
        process serving many repositories does not keep blocks of every pack it ever touched.
        """
        path = self.cached_path(name)
        if name not in self._present:
            with self._lock:
                lock = self._fetching.setdefault(name, threading.Lock())
            with lock:
                if not path.exists():
                    self._download(repo_id, name, path)
                with self._lock:
                    self._present.add(name)
                    self._fetching.pop(name, None)
        return PackFile(str(path), cache)

    def _download(self, repo_id: int, name: str, path: Path) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="dl-", dir=self.tmp_dir))
        try:
            self.storage.download_to(pack_key(repo_id, name, ".idx"), str(tmp / "p.idx"))
            self.storage.download_to(pack_key(repo_id, name), str(tmp / "p.pack"))
            os.replace(tmp / "p.idx", path.with_suffix(".idx"))
            os.replace(tmp / "p.pack", path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def reader(self, repo_id: int) -> tuple[PackReader, list[PackInfo]]:
        """Everything the repository holds: one database query, then local files only."""
        from musehub.storage import NotFound

        for attempt in range(3):
            infos = self.pack_infos(repo_id)
            cache = BlockCache()  # one per request, shared by its packs
            try:
                packs = [self.pack(repo_id, i.name, cache) for i in reversed(infos)]
                return PackReader(packs, cache), infos
            except NotFound:
                # A repack replaced a pack between our query and the download: list again.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # --------------------------------------------------------------------------- repack
    def maybe_repack(self, repo_id: int, user_id: int) -> None:
        """Keep a repository at a few packs, so reads do not probe many indexes.

        Every push adds a pack; past REPACK_AT packs, the smaller ones are merged into one
        (all but the largest when together they are smaller than it, else all: the merged
        sizes grow geometrically, so each object is rewritten only a few times). The swap is
        one transaction that deletes exactly the merged rows and inserts the new one; it loses
        (and its pack is deleted) if another process repacked first. Old pack files are
        deleted from storage only after a grace period, for readers that listed them.
        """
        infos = self.pack_infos(repo_id)
        if len(infos) <= REPACK_AT:
            return
        with self._lock:
            if repo_id in self._repacking:
                return
            self._repacking.add(repo_id)
        try:
            self._repack(repo_id, user_id, infos)
        finally:
            with self._lock:
                self._repacking.discard(repo_id)

    def _repack(self, repo_id: int, user_id: int, infos: list[PackInfo]) -> None:
        import secrets

        from muse.core.pack.write import write_pack_file

        by_size = sorted(infos, key=lambda i: i.bytes)
        rest = by_size[:-1]
        chosen = rest if sum(i.bytes for i in rest) < by_size[-1].bytes else by_size
        cache = BlockCache()
        packs = [self.pack(repo_id, i.name, cache) for i in chosen]
        qdir = self.quarantine_dir()
        try:

            def objects() -> Iterator[tuple[int, bytes]]:
                for p in packs:
                    for kind, _, body in p.iter_objects():
                        yield kind, body

            merged = write_pack_file(str(qdir), objects())
            path = Path(merged.path)
            name = f"pack-{merged.checksum.hex()}-{secrets.token_hex(4)}"
            blobs = sum(1 for _, kind in merged.kinds() if kind == 1)
            info = PackInfo(name, merged.count, blobs, path.stat().st_size)
            work_id = secrets.token_hex(16)
            now = time.time()
            with self.db.session() as s:
                dbops.defer_deletion(
                    s, work_id, repo_id, user_id, pack_key(repo_id, name), now + WORK_TTL_S, STORING
                )
            self.upload_pack(repo_id, name, path)
            try:
                with self.db.session() as s:
                    dbops.replace_packs(s, repo_id, [i.name for i in chosen], info)
                    dbops.set_deferred_state(s, work_id, CANCELLED)
                    for old in chosen:  # garbage once nobody can still be reading them
                        dbops.defer_deletion(
                            s,
                            secrets.token_hex(16),
                            repo_id,
                            user_id,
                            pack_key(repo_id, old.name),
                            now + REPACK_GRACE_S,
                            SCHEDULED,
                        )
            except dbops.StaleRef:
                self.delete_pack(repo_id, name)
                return
            self.adopt(name, path)
            log.info(
                "repacked repo %d: %d packs -> 1 (%d objects)", repo_id, len(chosen), info.objects
            )
        finally:
            shutil.rmtree(qdir, ignore_errors=True)

    # -------------------------------------------------------------------------- storage
    def upload_pack(self, repo_id: int, name: str, pack_path: Path) -> None:
        """Index first: a visible .pack key always has its .idx beside it."""
        self.put_immutable(pack_key(repo_id, name, ".idx"), pack_path.with_suffix(".idx"))
        self.put_immutable(pack_key(repo_id, name), pack_path)

    def put_immutable(self, key: str, path: Path) -> None:
        """Store a finished file (packs are never modified in place): the quarantine copy,
        soon the cache copy, and the stored one may then be one inode (Storage.put_immutable).
        """
        self.storage.put_immutable(key, str(path))

    def delete_pack(self, repo_id: int, name: str) -> None:
        for suffix in (".pack", ".idx"):
            try:
                self.storage.delete(pack_key(repo_id, name, suffix))
            except Exception:  # noqa: BLE001 - best effort; the sweep retries
                log.warning("could not delete %s", pack_key(repo_id, name, suffix))

    # ---------------------------------------------------------------------------- sweep
    def sweep(self, now: float | None = None, grace_s: float | None = None) -> int:
        """Delete the keys the ledger says are garbage by now; returns how many rows.

        Every key a push or a presign writes before its ref transaction has a
        ``deferred_deletions`` row with a ``delete_after``; the transaction cancels the
        deletion of what it made part of the repository. Rows still due after that time
        belong to someone who gave up (or crashed), or are bundles, manifests and replaced
        packs nobody may read any more: their keys go, the row says deleted. ``grace_s``:
        rows older than that are due whatever their delete_after (the periodic sweep's bound).
        """
        now = time.time() if now is None else now
        with self.db.session(readonly=True) as s:
            due = dbops.due_deletions(s, now, grace_s)
        swept = 0
        for row_id, key in due:
            keys = [key]
            if key.endswith(".pack"):
                keys.append(key[: -len(".pack")] + ".idx")
            ok = True
            for k in keys:
                try:
                    if self.storage.exists(k):
                        self.storage.delete(k)
                except Exception:  # noqa: BLE001 - storage down: try again next sweep
                    ok = False
            if ok:
                with self.db.session() as s:
                    dbops.set_deferred_state(s, row_id, DELETED)
                swept += 1
        return swept

    def clean_tmp(self, max_age_s: float = 6 * 3600) -> int:
        """Remove quarantine and download dirs left by a crashed process: those in which
        nothing changed for ``max_age_s`` (a live push keeps writing in its own). Returns
        how many went."""
        cutoff = time.time() - max_age_s
        removed = 0
        for p in self.tmp_dir.iterdir():
            try:
                if _newest_mtime(p) < cutoff:
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        p.unlink()
                    removed += 1
            except OSError:
                pass
        return removed

    def forget_cached(self, name: str) -> None:
        """Remove a pack nobody references any more from the local cache."""
        with self._lock:
            self._present.discard(name)
        for suffix in (".pack", ".idx"):
            try:
                os.unlink(self.cached_path(name).with_suffix(suffix))
            except FileNotFoundError:
                pass


def _newest_mtime(path: Path) -> float:
    """The latest modification time of ``path`` and what it directly holds."""
    newest = path.stat().st_mtime
    if path.is_dir():
        for child in path.iterdir():
            try:
                newest = max(newest, child.stat().st_mtime)
            except FileNotFoundError:
                pass
    return newest


def iter_file(path: Path | str, chunk: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                return
            yield b
