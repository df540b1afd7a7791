"""The periodic sweep: what crashed pushes, presigned PUTs and deleted repositories leave.

Every hub process runs :meth:`Sweeper.run` at start-up and then every ``sweep_interval_s``
seconds (``musehub.config``). It removes only what is older than ``sweep_grace_s``:

- on this machine, in every process (each has its own files): quarantine and download
  directories under ``<cache_dir>/tmp`` in which nothing changed for the grace; temp files of
  the local storage (``objects/.tmp/put-*``: a presigned PUT whose hub died); cached packs no
  repository lists any more (a deleted repository's, a repack's old ones once swept), and
  the least recently used ones while the cache is over ``cache_max_bytes``;
- shared by all processes, by one at a time (the ``sweep`` lease row, held for an interval):
  the ledger's due deletions (``deferred_deletions``; rows older than the grace count as due
  whatever their own deadline), then every storage key under ``repos/`` that neither a
  ``packs`` row nor a pending ledger row names (a deleted repository's objects, a bundle
  whose row is gone), and multipart uploads under ``repos/`` begun before the grace (the
  parts of a stream push whose hub died, which no listing shows).

Listings are taken before the database is read, so a pack stored and recorded meanwhile is
never taken for garbage (its ledger row is written before its key, its packs row before it
enters the cache).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from typing import TYPE_CHECKING

from musehub.protocol import dbops
from musehub.protocol.repostore import pack_key

if TYPE_CHECKING:
    from musehub.protocol.repostore import RepoStore

log = logging.getLogger("musehub.protocol")

LEASE = "sweep"


class Sweeper:
    """The sweep of one hub process (see the module docstring)."""

    def __init__(self, store: RepoStore) -> None:
        self.store = store
        self.settings = store.settings
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @property
    def grace(self) -> float:
        return float(self.settings.sweep_grace_s)

    def start(self) -> None:
        """Sweep now, then every interval, on a daemon thread."""
        threading.Thread(target=self._loop, name="musehub-sweep", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        interval = float(self.settings.sweep_interval_s)
        while True:
            self.run()
            if interval <= 0 or self._stop.wait(interval):
                return

    def run(self) -> dict[str, int]:
        """One sweep; never raises (a part that is down is tried again next time)."""
        if not self._lock.acquire(blocking=False):
            return {}
        counts: dict[str, int] = {}
        try:
            for name, step in (
                ("tmp", self._local_tmp),
                ("cache", self._cache),
                ("ledger", self._shared),
            ):
                try:
                    counts[name] = step()
                except Exception as e:  # noqa: BLE001 - housekeeping never takes the hub down
                    log.warning("sweep (%s) failed: %s: %s", name, type(e).__name__, e)
            if any(counts.values()):
                log.info("sweep removed %s", ", ".join(f"{v} {k}" for k, v in counts.items()))
        finally:
            self._lock.release()
        return counts

    # ------------------------------------------------------------------ this machine
    def _local_tmp(self) -> int:
        n = self.store.clean_tmp(self.grace)
        storage = self.store.storage
        sweep_temp = getattr(storage, "sweep_temp", None) if storage.local_files else None
        if sweep_temp is not None:
            n += int(sweep_temp(self.grace))
        return n

    def _cache(self) -> int:
        """Cached packs that no packs row and no pending ledger row names any more, then
        the least recently used while the cache is over its bound (RepoStore.evict)."""
        return self._unreferenced() + self.store.evict()

    def _unreferenced(self) -> int:
        cached = {p.stem for p in self.store.cache_dir.glob("*.pack")}
        cached |= {p.stem for p in self.store.cache_dir.glob("*.idx")}
        if not cached:
            return 0
        with self.store.db.session(readonly=True) as s:
            keep = {name for _, name in dbops.all_packs(s)}
            pending = dbops.pending_keys(s)
        keep |= {k.rsplit("/", 1)[-1].removesuffix(".pack") for k in pending}
        gone = sorted(cached - keep)
        for name in gone:
            self.store.forget_cached(name)
        return len(gone)

    # ------------------------------------------------------- shared, under the lease
    def _shared(self) -> int:
        with self.store.db.session() as s:
            # held for most of an interval: one process sweeps per interval, whichever
            ttl = max(float(self.settings.sweep_interval_s) * 0.9, 1.0)
            if not dbops.take_lease(s, LEASE, self.holder, time.time(), ttl):
                return 0  # another process swept within this interval
        n = self.store.sweep(grace_s=self.grace)
        # a push's parts sent while it arrived (protocol.streamstore), its hub gone since
        n += self.store.storage.abort_stale_multiparts("repos/", self.grace)
        return n + self._orphan_keys()

    def _orphan_keys(self) -> int:
        """Storage keys under ``repos/`` that the database does not name at all."""
        storage = self.store.storage
        keys = storage.list("repos/")  # first: anything stored later has its rows already
        if not keys:
            return 0
        with self.store.db.session(readonly=True) as s:
            packs = dbops.all_packs(s)
            pending = dbops.pending_keys(s)
        live: set[str] = set()
        for repo_id, name in packs:
            live.add(pack_key(repo_id, name))
            live.add(pack_key(repo_id, name, ".idx"))
        for key in pending:
            live.add(key)
            if key.endswith(".pack"):
                live.add(key.removesuffix(".pack") + ".idx")
        orphans = [k for k in keys if k not in live]
        for key in orphans:
            storage.delete(key)
        return len(orphans)
