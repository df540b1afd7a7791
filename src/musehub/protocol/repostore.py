"""Where a hub repository's objects rest: packs in object storage, a local cache, one reader.

A repository is the list of its packs (one ``packs`` row per accepted push) whose bytes live in
object storage at ``repos/<repo_id>/packs/<name>.pack`` (+ ``.idx``). A pack's name carries its
checksum and a random suffix, so a name always denotes the same bytes: every hub process keeps
an immutable local copy under ``<cache_dir>/packs/`` and reads objects there through
``PackFile``, with no per-object round trip to the database or to storage. Several processes on
several machines can share one database and one store because nothing cached ever changes.

The cache is bounded (``cache_max_bytes``; 0: unbounded) by least-recent use: using a pack
sets its file's mtime (at most every few seconds; atime is unreliable, often ``noatime``),
so every process on the machine sees the same order, and whoever adds a pack evicts the
least recently used pairs (``.pack`` first, its ``.idx`` after) until the cache fits. A
reader never loses a pack it holds: :meth:`RepoStore.pack` opens the file at once (an
unlinked open file stays readable on Linux), packs used in the last
:data:`CACHE_PROTECT_S` seconds are never evicted, and a pack evicted before it was opened
is downloaded again from storage.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from muse.core.pack.cache import BlockCache
from muse.core.pack.file import PackFile
from muse.core.pack.packset import PackList
from muse.core.repack import BIG_PACK
from musehub.files import private_file
from musehub.protocol import dbops
from musehub.protocol.records import CANCELLED, DELETED, SCHEDULED, STORING, PackInfo

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from musehub.config import Settings
    from musehub.db import Database
    from musehub.storage import Storage

log = logging.getLogger("musehub.protocol")

WORK_TTL_S = 3600  # how long a crashed push's half-stored pack may linger before the sweep
REPACK_AT = 16  # more packs than this in one repository: merge the smaller ones
# BIG_PACK (the client's repack threshold, muse.core.repack): packs at least this large are
# never merged nor counted towards REPACK_AT; a fetch hands them out as they are (serve.py).
REPACK_GRACE_S = 3 * 3600  # replaced packs stay this long: readers, and URLs handed out
CACHE_TOUCH_S = 2.0  # a used pack's mtime is set again at most this often (per process)
CACHE_PROTECT_S = 5.0  # packs used this recently are never evicted (a reader opening them)


def pack_key(repo_id: int, name: str, suffix: str = ".pack") -> str:
    return f"repos/{repo_id}/packs/{name}{suffix}"


def upload_key(repo_id: int, upload_id: str) -> str:
    return f"repos/{repo_id}/uploads/{upload_id}.pack"


def bound_upload_key(repo_id: int, sha256: bytes) -> str:
    """Where a checksum-bound presigned upload goes: straight to a pack key of its own, named
    after the digest the store holds the URL to (``pack-{sha256}-{random}``), so the verified
    upload is kept as the pack with no copy (receive.Receiver.receive_upload)."""
    return pack_key(repo_id, f"pack-{sha256.hex()}-{secrets.token_hex(4)}")


def is_bound_upload(repo_id: int, key: str) -> bool:
    return key.startswith(pack_key(repo_id, "", ""))


def bound_upload_name(key: str) -> tuple[str, bytes]:
    """The pack name of a bound upload's key, and the digest it is bound to."""
    name = key.rsplit("/", 1)[1].removesuffix(".pack")
    return name, bytes.fromhex(name.split("-")[1])


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
        self._touched: dict[str, float] = {}  # name -> when this process last set its mtime

    # ------------------------------------------------------------------------- database
    def pack_infos(self, repo_id: int) -> list[PackInfo]:
        """The repository's packs, ordered against garbage collection (dbops.gc_fence)."""
        with self.db.session(readonly=True) as s:
            dbops.gc_fence(s, repo_id)
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
        os.utime(pack_path)  # used now: not the first to be evicted
        os.replace(pack_path.with_suffix(".idx"), dest.with_suffix(".idx"))
        os.replace(pack_path, dest)
        self._touch(name, force=True)
        self.evict(keep=name)

    def pack(self, repo_id: int, name: str, cache: BlockCache | None = None) -> PackFile:
        """A PackFile of a stored pack, downloading it into the cache on first use.

        A new PackFile per request (its index is a few MB at most, read in milliseconds), with
        the request's block cache: decompressed blocks then live as long as the request, so a
        process serving many repositories does not keep blocks of every pack it ever touched.
        Its file is open on return, so an eviction cannot take it away from this reader.
        """
        for attempt in range(3):
            path = self.cached_path(name)
            if name not in self._present:
                with self._lock:
                    lock = self._fetching.setdefault(name, threading.Lock())
                with lock:
                    if not path.exists():
                        self._download(repo_id, name, path)
                        self._touch(name, force=True)
                        self.evict(keep=name)
                    with self._lock:
                        self._present.add(name)
                        self._fetching.pop(name, None)
            try:
                self._touch(name)
                pf = PackFile(str(path), cache)
                pf._pread(0, 0)  # opens the pack now: an unlinked open file stays readable
                return pf
            except FileNotFoundError:
                # Evicted (by another process) between the check and the open: fetch again
                # (a pack without its index too: the download moves the index in first).
                with self._lock:
                    self._present.discard(name)
                if not path.with_suffix(".idx").exists():
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _touch(self, name: str, force: bool = False) -> None:
        """Mark a pack used (its mtime), for the least-recently-used order of the cache."""
        now = time.time()
        if not force and now - self._touched.get(name, 0.0) < CACHE_TOUCH_S:
            return
        self._touched[name] = now
        try:
            os.utime(self.cached_path(name), (now, now))
        except OSError:  # gone, or a read-only cache: the order is only a hint
            pass

    def cache_usage(self) -> list[tuple[float, int, str]]:
        """(last use, bytes of .pack + .idx, name) of every cached pack (an index alone is
        a pack arriving: the index moves in first; it is not listed)."""
        usage: dict[str, list[float]] = {}
        try:
            entries = list(os.scandir(self.cache_dir))
        except FileNotFoundError:
            return []
        for e in entries:
            stem, dot, suffix = e.name.rpartition(".")
            if not dot or suffix not in ("pack", "idx"):
                continue
            try:
                st = e.stat()
            except FileNotFoundError:
                continue
            u = usage.setdefault(stem, [-1.0, 0])
            u[1] += st.st_size
            if suffix == "pack":
                u[0] = st.st_mtime
        return [(used, int(size), name) for name, (used, size) in usage.items() if used >= 0]

    def evict(self, keep: str | None = None) -> int:
        """Remove least recently used packs until the cache fits ``cache_max_bytes``;
        returns how many went. Never ``keep``, nor a pack used in the last
        CACHE_PROTECT_S seconds."""
        bound = int(getattr(self.settings, "cache_max_bytes", 0) or 0)
        if bound <= 0:
            return 0
        usage = sorted(self.cache_usage())
        total = sum(size for _, size, _ in usage)
        protect = time.time() - CACHE_PROTECT_S
        evicted = 0
        for used, size, name in usage:
            if total <= bound:
                break
            if name == keep or used > protect:
                continue
            self.forget_cached(name)
            total -= size
            evicted += 1
        if evicted:
            log.info("pack cache: evicted %d packs, %d bytes left", evicted, total)
        return evicted

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

        Every push adds a pack; past REPACK_AT packs under BIG_PACK, the smaller ones are
        merged into one (all but the largest when together they are smaller than it, else
        all: the merged sizes grow geometrically, so each object is rewritten only a few
        times). Packs of BIG_PACK and more (the segments of a large push, each at least
        64 MiB) are left as they are, as git's ``gc.bigPackThreshold`` does: merging them
        would rewrite every byte of a large file after each push. The swap is
        one transaction that deletes exactly the merged rows and inserts the new one; it loses
        (and its pack is deleted) if another process repacked first. Old pack files are
        deleted from storage only after a grace period, for readers that listed them.
        """
        infos = [i for i in self.pack_infos(repo_id) if i.bytes < BIG_PACK]
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

            info, path = self.write_pack(qdir, objects())
            work_id = self.store_new_pack(repo_id, user_id, info, path)
            try:
                with self.db.session() as s:
                    dbops.replace_packs(s, repo_id, [i.name for i in chosen], info)
                    self.retire(s, repo_id, user_id, work_id, [i.name for i in chosen])
            except dbops.StaleRef:
                self.delete_pack(repo_id, info.name)
                return
            self.adopt(info.name, path)
            log.info(
                "repacked repo %d: %d packs -> 1 (%d objects)", repo_id, len(chosen), info.objects
            )
        finally:
            shutil.rmtree(qdir, ignore_errors=True)

    @staticmethod
    def write_pack(qdir: Path, objects: Iterator[tuple[int, bytes]]) -> tuple[PackInfo, Path]:
        """Write (kind, body) pairs as a new pack in quarantine: its row-to-be and its path."""
        import secrets

        from muse.core.objects import BLOB
        from muse.core.pack.write import write_pack_file

        written = write_pack_file(str(qdir), objects)
        path = Path(written.path)
        name = f"pack-{written.checksum.hex()}-{secrets.token_hex(4)}"
        info = PackInfo(name, written.count, written.count_kind(BLOB), path.stat().st_size)
        written.close()
        return info, path

    def store_new_pack(self, repo_id: int, user_id: int, info: PackInfo, path: Path) -> str:
        """Upload a pack that a swap of packs rows will name, under a ledger row first (a
        crash leaves a key the sweep finds); returns the row, for :meth:`retire`."""
        import secrets

        work_id = secrets.token_hex(16)
        key = pack_key(repo_id, info.name)
        with self.db.session() as s:
            dbops.defer_deletion(
                s, work_id, repo_id, user_id, key, time.time() + WORK_TTL_S, STORING
            )
        self.upload_pack(repo_id, info.name, path)
        return work_id

    @staticmethod
    def retire(s: Session, repo_id: int, user_id: int, work_id: str | None, old: list[str]) -> None:
        """In the swap's transaction: the new pack is kept (its row ``work_id``), the ``old``
        ones are garbage once nobody can still be reading them (REPACK_GRACE_S)."""
        import secrets

        if work_id is not None:
            dbops.set_deferred_state(s, work_id, CANCELLED)
        after = time.time() + REPACK_GRACE_S
        for name in old:
            key = pack_key(repo_id, name)
            dbops.defer_deletion(s, secrets.token_hex(16), repo_id, user_id, key, after, SCHEDULED)

    # -------------------------------------------------------------------------- storage
    def upload_pack(
        self,
        repo_id: int,
        name: str,
        pack_path: Path,
        store_pack: Callable[[], None] | None = None,
    ) -> None:
        """The pack and its index. On object storage the two go side by side (each is a
        request's latency; nothing reads a stored pack before its packs row, written once
        both are done); local storage links the two files. ``store_pack``: what stores the
        pack instead of a PUT of ``pack_path`` (a multipart upload's completion, say)."""
        idx_key, idx_path = pack_key(repo_id, name, ".idx"), pack_path.with_suffix(".idx")
        if store_pack is None:
            store_pack = lambda: self.put_immutable(pack_key(repo_id, name), pack_path)  # noqa: E731
        if self.storage.local_files:
            self.put_immutable(idx_key, idx_path)
            store_pack()
            return
        with ThreadPoolExecutor(1) as pool:
            index = pool.submit(self.put_immutable, idx_key, idx_path)
            store_pack()
            index.result()

    def put_immutable(self, key: str, path: Path) -> None:
        """Store a finished file (packs are never modified in place): the quarantine copy,
        soon the cache copy, and the stored one may then be one inode (Storage.put_immutable).
        """
        self.storage.put_immutable(key, str(path))

    def delete_pack(
        self, repo_id: int, name: str, suffixes: tuple[str, ...] = (".pack", ".idx")
    ) -> None:
        """Delete a stored pack no row names (a refused push's, a lost swap's); its ledger
        row is done then (else the sweep retries). ``suffixes=(".idx",)``: only its index."""
        ok = True
        for suffix in suffixes:
            try:
                self.storage.delete(pack_key(repo_id, name, suffix))
            except Exception:  # noqa: BLE001 - best effort; the sweep retries
                ok = False
                log.warning("could not delete %s", pack_key(repo_id, name, suffix))
        if ok:
            try:
                with self.db.session() as s:
                    dbops.end_storing(s, repo_id, pack_key(repo_id, name))
            except Exception:  # noqa: BLE001 - the row then expires by itself
                log.warning("could not end the ledger row of %s", pack_key(repo_id, name))

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
    """The file's bytes in chunks; opened now, so a later eviction from the cache cannot
    take it away from the response that streams it."""
    f = open(path, "rb")  # noqa: SIM115 - closed by the generator

    def chunks() -> Iterator[bytes]:
        with f:
            while True:
                b = f.read(chunk)
                if not b:
                    return
                yield b

    return chunks()
