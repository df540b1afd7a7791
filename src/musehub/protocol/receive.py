"""Receiving a push: quarantine, verification, then one compare-and-swap ref transaction.

Nothing of a push is visible until the pack has been decoded and re-hashed in one pass into a
private quarantine directory, every tree and commit parsed, and everything reachable from the
new tips found in the pack or the repository. Then the pack goes to storage, and a single
database transaction inserts its ``packs`` row (within the storage quotas, checked there
with the pack's real size: musehub.quota) and moves every ref from the id the client
expected to the new one (all or none). Any failure leaves the repository exactly as it was:
quarantine files are removed, an uploaded pack nobody references is deleted (and if even that
fails, its ``deferred_deletions`` row lets the sweep delete it after a while).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from sqlalchemy.exc import IntegrityError

from muse.core.graph import is_ancestor
from muse.core.objects import BLOB, CHUNKS, COMMIT, TAG, TREE
from muse.core.pack.codec import DecodeBudget, PackError, PackLimits
from muse.core.pack.file import PackFile
from muse.core.pack.write import receive_pack, receive_pack_file
from muse.core.refnames import HEADS, TAGS
from muse.wire.messages import RefUpdate
from muse.wire.verify import Connectivity, PathPolicy, StructureChecker
from musehub import quota
from musehub.errors import HubError
from musehub.protocol import dbops
from musehub.protocol.body import BodyTooLarge, BodyTruncated
from musehub.protocol.idhash import hasher
from musehub.protocol.records import CANCELLED, DELETED, SCHEDULED, STORING, PackInfo
from musehub.protocol.repostore import (
    REPACK_AT,
    WORK_TTL_S,
    PackReader,
    RepoStore,
    bound_upload_name,
    is_bound_upload,
    pack_key,
)
from musehub.protocol.streamstore import StreamingStore

if TYPE_CHECKING:
    from musehub.config import Settings

log = logging.getLogger("musehub.protocol")


_budgets: dict[int, DecodeBudget] = {}


def pack_limits(settings: Settings) -> PackLimits:
    """The hub's own policy for what one pack may hold (musehub.config.Limits).

    Every receive of the process shares one DecodeBudget, so concurrent pushes cannot
    multiply what decompression holds in memory.
    """
    lim = settings.limits
    budget = _budgets.get(lim.decode_budget_bytes)
    if budget is None:
        budget = _budgets.setdefault(lim.decode_budget_bytes, DecodeBudget(lim.decode_budget_bytes))
    return PackLimits(
        max_object_bytes=lim.max_object_bytes,
        max_pack_bytes=lim.max_pack_bytes,
        max_objects=lim.max_objects,
        max_decompressed_bytes=lim.max_decompressed_bytes,
        max_expansion=lim.max_zstd_expansion,
        budget=budget,
    )


def pack_error(e: PackError) -> HubError:
    if e.code in ("too_large", "payload_too_large"):
        return HubError(413, "payload_too_large", str(e))
    if e.code in ("missing_objects", "unsafe_path"):
        return HubError(400, e.code, str(e))
    if e.code == "busy":
        return HubError(503, "busy", str(e), headers={"Retry-After": "5"})
    return HubError(400, "bad_pack", str(e))


def _count_blobs(pack: PackFile) -> int:
    return pack.count_kind(BLOB)


def _answer(updates: list[RefUpdate], objects: int, size: int) -> dict[str, Any]:
    """The push's JSON answer (docs/wire.md §4): the refs moved and what was received."""
    return {
        "updated": [
            {
                "ref": u.ref,
                "old": u.old.hex() if u.old else None,
                "new": u.new.hex() if u.new else None,
            }
            for u in updates
        ],
        "objects": objects,
        "bytes": size,
    }


class Receiver:
    """One push into one repository, from quarantine to the ref transaction."""

    def __init__(
        self,
        store: RepoStore,
        repo_id: int,
        user_id: int | None,
        default_branch: str | None = None,
    ) -> None:
        self.store = store
        self.repo_id = repo_id
        self.user_id = user_id
        #: The branch a push may not delete (GitHub refuses it too): clones check it out.
        self.default_branch = default_branch
        self.times: dict[str, float] = {}
        self.pack_count = 0
        self._kept: str | None = None  # the name of the pack the ref transaction stored
        self._paths = PathPolicy()  # fed while the pack is decoded, checked with connectivity
        #: A staged pack (push/stage, or push/commit with "stage"): blobs only, kept without
        #: moving a ref, so a large push cut off half way keeps its finished segments.
        self.stage = False
        self._fence: str | None = None  # ledger row of an object-less push (_start_fence)

    def receive_upload(
        self, key: str, updates: list[RefUpdate], upload_id: str | None = None
    ) -> dict[str, Any]:
        """Verify and accept the bundle a client uploaded to ``key`` (push/commit).

        On object storage the bundle is first copied, server-side, to its final hub-only
        pack key, and that copy is what gets verified, stored and cached: the client's
        presigned URL stays valid until it expires, so the upload key itself could still
        change after verification, but the copy cannot. Only the index is uploaded then,
        never the pack a second time. The final key has its own ledger row from before
        the copy, so a hub dying in between leaves nothing the sweep misses; any refusal
        deletes it. Local storage links and verifies the upload in place as before, and a
        checksum-bound upload (its URL can only PUT these bytes) is verified and kept where
        it lies (``_receive_bound``).
        """
        storage = self.store.storage
        if storage.local_files:
            with storage.open_read(key) as stream:
                return self.receive(stream, updates, upload_id, local=storage.local_path(key))
        if is_bound_upload(self.repo_id, key):
            return self._receive_bound(key, updates, upload_id)
        # Not derived from the checksum (unknown until verified), random: unique, and a
        # name still always denotes the same bytes.
        name = f"pack-{secrets.token_hex(32)}-{secrets.token_hex(4)}"
        final = pack_key(self.repo_id, name)
        work_id = self._storing_row(final)
        self._kept = None
        try:
            t0 = time.perf_counter()
            storage.copy(key, final)
            self.times["copy"] = time.perf_counter() - t0
            with storage.open_read(final) as stream:
                return self.receive(
                    stream, updates, upload_id, stored_name=name, stored_row=work_id
                )
        finally:
            if self._kept != name:
                self.store.delete_pack(self.repo_id, name)

    def _receive_bound(
        self, key: str, updates: list[RefUpdate], upload_id: str | None
    ) -> dict[str, Any]:
        """A checksum-bound upload (push/presign with ``sha256`` on a store that checks it):
        its URL can only ever PUT bytes of that digest, so the key verified is the key kept,
        the pack itself, with no copy. Read once, its digest checked at the end before any
        ref moves; its ledger row is the pack's until the transaction cancels it. Refused or
        not needed, it is deleted (the transaction or the caller schedules the row for the
        URL's lifetime); when the hub itself failed it stays, for the commit's retry."""
        name, sha256 = bound_upload_name(key)
        self._kept = None
        outcome = "failed"
        try:
            with self.store.storage.open_read(key) as raw:
                result = self.receive(
                    raw, updates, upload_id, stored_name=name, stored_row=upload_id, sha256=sha256
                )
            outcome = "done"
            return result
        except HubError as e:
            if e.status < 500:
                outcome = "refused"
            raise
        finally:
            if self._kept != name:
                if outcome == "failed":  # its index may be stored: not the upload's bytes
                    self.store.delete_pack(self.repo_id, name, (".idx",))
                else:
                    self.store.delete_pack(self.repo_id, name)

    def receive(
        self,
        stream: BinaryIO,
        updates: list[RefUpdate],
        upload_id: str | None = None,
        stored_name: str | None = None,
        stored_row: str | None = None,
        local: str | None = None,
        sha256: bytes | None = None,
    ) -> dict[str, Any]:
        """Decode ``stream`` (the pack) in quarantine, verify, store and move the refs.

        ``upload_id``: the ledger row of a presigned bundle, which the ref transaction
        schedules for deletion with everything else. ``stored_name``: the pack is already in
        storage under that name (``stream`` reads it), only its index is uploaded;
        ``stored_row`` is its ledger row, cancelled once the pack is kept. ``local``: the
        file ``stream`` reads, in a storage that never writes a file in place (it may be
        linked into quarantine and verified there instead of copied). ``sha256``: the digest
        the whole pack must have (a checksum-bound upload), checked in the decoding pass before
        any ref moves.
        """
        tee: StreamingStore | None = None
        if stored_name is None and local is None and not self.store.storage.local_files:
            tee = StreamingStore(self.store, self.repo_id, stream, self._storing_row)
            stream = cast(BinaryIO, tee)
        qdir = self.store.quarantine_dir()
        try:
            pack, conn = self._quarantine(stream, local, qdir, sha256)
            finish = None
            if tee is not None and tee.started:  # stored while it arrived: finish it
                stored_name, stored_row, finish = tee.name, tee.row, tee.finish
            return self._accept(pack, conn, updates, upload_id, stored_name, stored_row, finish)
        finally:
            if tee is not None and self._kept != tee.name:
                tee.discard()
            try:
                os.rmdir(qdir)  # accepted: the pack moved to the cache, nothing is left
            except OSError:
                shutil.rmtree(qdir, ignore_errors=True)

    # ------------------------------------------------------- phase 1: quarantine, verify
    def _quarantine(
        self, stream: BinaryIO, local: str | None, qdir: Path, sha256: bytes | None = None
    ) -> tuple[PackFile, Connectivity]:
        """Decode the pack into ``qdir``, re-hashing every object and checking each tree's
        and commit's structure in that one pass, so nothing unverified ever leaves quarantine
        and the pack is never read twice. Returns it with what its objects reference."""
        limits = pack_limits(self.store.settings)
        conn = Connectivity()
        structure = StructureChecker()

        paths = self._paths = PathPolicy()

        def inspect(kind: int, oid: bytes, view: memoryview) -> None:
            body = bytes(view)
            structure.check(kind, body)
            conn.add(kind, body)
            if kind == TREE:  # the names it shares with the previous tree, compared once
                paths.add(kind, oid, body, window=structure.window)
            elif kind == COMMIT:
                paths.add(kind, oid, body, refs=conn.last_commit)
            elif kind != CHUNKS:  # a chunk list names no paths
                paths.add(kind, oid, body)

        try:
            t0 = time.perf_counter()
            pack = None
            kinds = (TREE, COMMIT, CHUNKS, TAG)
            if local is not None and sha256 is None:
                # Linked and verified in place, not copied (storage writes atomically).
                helpers = hasher(self.store.settings.limits.hash_processes)
                pack = receive_pack_file(
                    local,
                    str(qdir),
                    limits,
                    inspect,
                    kinds,
                    hash_ids=lambda link: helpers.submit(link, limits),
                )
            if pack is None:
                pack = receive_pack(stream, str(qdir), limits, inspect, kinds, sha256=sha256)
                if stream.read(1):
                    raise HubError(400, "bad_pack", "data after the end of the pack")
            self.times["receive"] = time.perf_counter() - t0
        except PackError as e:
            raise pack_error(e) from None
        except BodyTooLarge as e:
            raise HubError(413, "payload_too_large", str(e)) from None
        except BodyTruncated as e:
            raise HubError(400, "bad_pack", f"body ended early: {e}") from None
        return pack, conn

    def _accept(
        self,
        pack: PackFile,
        conn: Connectivity,
        updates: list[RefUpdate],
        upload_id: str | None,
        stored_name: str | None = None,
        stored_row: str | None = None,
        finish: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """The phases after quarantine: storing overlaps verifying (a refusal undoes it),
        then the ref transaction, then the pack joins the local cache. ``finish``: what
        makes the stored pack whole (a multipart upload's end), run before its index goes."""
        received = (pack.count, os.path.getsize(pack.path))
        upload, storing = self._start_publish(pack, stored_name, stored_row, finish)
        kept: PackInfo | None = None
        try:
            info = self._check(pack, conn, updates)
            info = self._finish_publish(upload, info)
            kept = self._transaction(updates, info, storing, upload_id)
        finally:
            if upload is not None and kept is None:
                self._unpublish(upload, stored_name)
            if self._fence is not None:  # refused before its transaction ended it
                self._end_fence()
        if kept is not None:
            self._adopt(pack, kept)
        log.info(
            "push to repo %d: %d objects, %d bytes; %s",
            self.repo_id,
            received[0],
            received[1],
            ", ".join(f"{k} {v:.3f}s" for k, v in self.times.items()),
        )
        return _answer(updates, *received)

    # ------------------------------------------------------------ phase 2: publish
    def _start_publish(
        self,
        pack: PackFile,
        stored_name: str | None,
        stored_row: str | None,
        finish: Callable[[], None] | None = None,
    ) -> tuple[_Upload | None, list[str]]:
        """Start storing the pack while it is verified, which hides the upload's time.

        A pack already in storage (receive_upload) sends only its index. Any other gets a
        fresh name and a ledger row first, so that a crash mid-upload leaves a key the sweep
        finds. Returns the upload under way and the ledger rows the transaction cancels.
        """
        storing = [stored_row] if stored_row is not None else []
        if pack.count == 0:
            self._start_fence()
            return None, storing
        pack_path = Path(pack.path)
        if stored_name is not None:
            up = _Upload(self.store, self.repo_id, stored_name, pack_path, True, finish)
            return up, storing
        checksum = pack_path.stem.removeprefix("pack-")
        name = f"pack-{checksum}-{secrets.token_hex(4)}"
        storing.append(self._storing_row(pack_key(self.repo_id, name)))
        return _Upload(self.store, self.repo_id, name, pack_path), storing

    def _storing_row(self, key: str) -> str:
        """The ledger row of a pack about to be stored, committed before its first byte is:
        a crash mid-upload leaves a key the sweep finds (and fences gc, protocol.gc)."""
        work_id = secrets.token_hex(16)
        t0 = time.perf_counter()
        with self.store.db.session() as s:
            dbops.defer_deletion(
                s, work_id, self.repo_id, self.user_id, key, time.time() + WORK_TTL_S, STORING
            )
        self.times["prepare"] = time.perf_counter() - t0
        return work_id

    def _start_fence(self) -> None:
        """A push that brings no objects still reads the repository's packs (its closure and
        fast-forward checks): a ``storing`` ledger row naming no key that will ever exist
        tells ``musehub gc`` a push is in flight until the ref transaction (or the refusal)
        ends it, as a pack's own row does for a push with objects (see protocol.gc)."""
        work_id = secrets.token_hex(16)
        key = f"repos/{self.repo_id}/fences/{work_id}"
        with self.store.db.session() as s:
            dbops.defer_deletion(
                s, work_id, self.repo_id, self.user_id, key, time.time() + WORK_TTL_S, STORING
            )
        self._fence = work_id

    def _end_fence(self) -> None:
        fence, self._fence = self._fence, None
        if fence is None:
            return
        try:
            with self.store.db.session() as s:
                dbops.set_deferred_state(s, fence, DELETED)
        except Exception:  # noqa: BLE001 - the row then expires by itself (WORK_TTL_S)
            log.warning("could not end the push fence %s", fence)

    def _finish_publish(self, upload: _Upload | None, info: PackInfo | None) -> PackInfo | None:
        """Wait for the storage upload (its failure refuses the push) and name the packs row
        after the stored pack; None when there is nothing to record."""
        if upload is None:
            return None
        upload.wait()
        self.times["store"] = upload.seconds
        if info is None:
            return None
        return PackInfo(upload.name, info.objects, info.blobs, info.bytes)

    def _unpublish(self, upload: _Upload, stored_name: str | None) -> None:
        """Undo a storage upload that no ref will name: refused, or a retry (or lost race)
        whose objects are stored already. receive_upload deletes a pack it stored itself."""
        upload.join()
        if stored_name is None:
            self.store.delete_pack(self.repo_id, upload.name)

    # ---------------------------------------------------- phase 3: the ref transaction
    def _transaction(
        self,
        updates: list[RefUpdate],
        info: PackInfo | None,
        storing: list[str],
        upload_id: str | None,
    ) -> PackInfo | None:
        """Move every ref by compare-and-swap and record the pack, in one transaction: all or
        nothing, so a concurrent push that moved a ref first makes this one 409, not a mix.

        Returns the packs row written (None: nothing new was kept). The ledger changes ride
        in the same transaction: a kept pack's deletion is cancelled, a presigned upload's
        scheduled.
        """
        t0 = time.perf_counter()
        try:
            with self.store.db.session() as s:
                changed = False
                for u in updates:
                    changed |= dbops.move_ref(s, self.repo_id, u.ref, u.old, u.new)
                created = [u.ref for u in updates if u.old is None and u.new is not None]
                clash = dbops.ref_in_the_way(s, self.repo_id, created)
                if clash is not None:
                    raise _ref_conflict(*clash)
                kept = info if changed or self.stage else None
                cancelled: list[str] = []
                if kept is not None:  # the pack is part of the repository now
                    # The exact size, under the owner's lock: the last word on quotas.
                    quota.check(s, self.store.settings, self.repo_id, kept.bytes, lock=True)
                    dbops.insert_pack(s, self.repo_id, kept)
                    for row_id in storing:
                        dbops.set_deferred_state(s, row_id, CANCELLED)
                    cancelled = storing
                if upload_id is not None and upload_id not in cancelled:
                    # A still-valid URL could PUT it again until then (a bound upload
                    # kept as the pack is cancelled above instead).
                    dbops.set_deferred_state(s, upload_id, SCHEDULED)
                if self._fence is not None:
                    dbops.set_deferred_state(s, self._fence, DELETED)
        except dbops.StaleRef as e:
            raise HubError(409, "stale_ref", f"{e.ref} moved while the push was verified") from None
        except IntegrityError:
            # The only foreign key a push writes is its repository: deleted meanwhile.
            raise HubError(404, "repo_not_found", "the repository was deleted") from None
        self.times["transaction"] = time.perf_counter() - t0
        self._fence = None  # ended with the transaction
        if kept is not None:
            self._kept = kept.name  # only once the transaction committed
        return kept

    def _adopt(self, pack: PackFile, info: PackInfo) -> None:
        """Move the accepted pack into the local cache (no download on first read) and
        start a repack when the repository has collected too many packs."""
        pack.close()
        try:
            self.store.adopt(info.name, Path(pack.path))
        except OSError:
            pass  # downloaded again on first use
        if self.pack_count + 1 > REPACK_AT and self.user_id is not None:
            threading.Thread(target=self._repack, daemon=True).start()

    def _repack(self) -> None:
        try:
            assert self.user_id is not None
            self.store.maybe_repack(self.repo_id, self.user_id)
        except Exception:  # noqa: BLE001 - housekeeping; the next push tries again
            log.exception("repack of repo %d failed", self.repo_id)

    def _check(
        self, pack: PackFile, conn: Connectivity, updates: list[RefUpdate]
    ) -> PackInfo | None:
        """Connectivity, kinds, staleness and fast-forward; raises HubError.

        Returns what the packs row would say (None when every ref already holds its new
        value: a retry of a push that succeeded stores nothing again).
        """
        if self.stage and _count_blobs(pack) != pack.count:
            raise HubError(400, "bad_pack", "a staged pack may hold blobs only")
        overlay = self._connected(pack, conn, updates)
        t0 = time.perf_counter()
        current = self._check_refs(overlay, updates)
        self.times["refs"] = time.perf_counter() - t0
        if pack.count == 0 or (
            not self.stage and all(current.get(u.ref) == u.new for u in updates)
        ):
            return None
        return PackInfo("", pack.count, _count_blobs(pack), os.path.getsize(pack.path))

    def _connected(
        self, pack: PackFile, conn: Connectivity, updates: list[RefUpdate]
    ) -> PackReader:
        """Everything reachable from the new tips is in the pack or the repository (the
        structure was checked while receiving). Returns a reader over both."""
        t0 = time.perf_counter()
        try:
            existing, infos = self.store.reader(self.repo_id)
            self.pack_count = len(infos)
            # A tag may name a commit or an annotated tag: _check_refs checks which.
            tips = [u.new for u in updates if u.new is not None and not u.ref.startswith(TAGS)]
            conn.check(pack, existing, tips)
            overlay = PackReader([pack, *existing.packs], existing.cache)
            self._paths.check(overlay)  # what a client could not check out is not stored
        except PackError as e:
            raise pack_error(e) from None
        self.times["verify"] = time.perf_counter() - t0
        return overlay

    def _check_refs(self, overlay: PackReader, updates: list[RefUpdate]) -> dict[str, bytes]:
        """Branches name commits, tags commits or annotated tags; the default branch is
        never deleted; a tag never moves unless forced (git's rule). Refuses early what the
        transaction would refuse anyway (stale, non-fast-forward), before anything is
        stored. Returns the refs as read."""
        for u in updates:
            if u.new is not None and u.ref.startswith(HEADS):
                if overlay.kind(u.new) != COMMIT:
                    raise HubError(400, "bad_request", f"{u.ref}: {u.new.hex()} is not a commit")
            elif u.new is not None and u.ref.startswith(TAGS):
                kind = overlay.kind(u.new)
                if kind is None:
                    raise HubError(400, "missing_objects", f"{u.ref}: {u.new.hex()} is missing")
                if kind not in (COMMIT, TAG):
                    raise HubError(
                        400, "bad_request", f"{u.ref}: {u.new.hex()} is not a commit or a tag"
                    )
            if u.new is None and u.ref == HEADS + (self.default_branch or ""):
                raise HubError(
                    409,
                    "default_branch",
                    f"{u.ref} is the repository's default branch and cannot be deleted "
                    "(make another branch the default first)",
                )

        with self.store.db.session(readonly=True) as s:
            current = dbops.read_refs(s, self.repo_id)
        gone = {u.ref for u in updates if u.new is None}
        after = {r for r in current if r not in gone} | {u.ref for u in updates if u.new}
        dirs = {r[:i] for r in after for i, c in enumerate(r) if c == "/"}
        for u in updates:  # early, before storing; the transaction checks again, atomically
            if u.new is not None and u.ref not in current:
                above = (u.ref[:i] for i, c in enumerate(u.ref) if c == "/")
                other = next((a for a in above if a in after), None)
                if other is None and u.ref in dirs:
                    other = min(r for r in after if r.startswith(u.ref + "/"))
                if other is not None:
                    raise _ref_conflict(u.ref, other)
        for u in updates:
            cur = current.get(u.ref)
            if cur == u.new:
                continue
            if cur != u.old:
                raise HubError(
                    409,
                    "stale_ref",
                    f"{u.ref} is at {cur.hex() if cur else 'nothing'}, not the expected "
                    f"{u.old.hex() if u.old else 'nothing'}",
                )
            if not u.force and u.old is not None and u.new is not None:
                if u.ref.startswith(TAGS):
                    raise HubError(
                        409,
                        "tag_exists",
                        f"{u.ref} already exists at {u.old.hex()} (a tag moves only when forced)",
                    )
                if not is_ancestor(overlay, u.old, u.new):
                    raise HubError(
                        409, "non_fast_forward", f"{u.ref}: {u.new.hex()} does not contain it"
                    )
        return current


def _ref_conflict(ref: str, other: str) -> HubError:
    return HubError(
        409,
        "ref_conflict",
        f"{ref} cannot exist beside {other}: one would be a file inside the other",
    )


class _Upload:
    """Copy a verified-or-being-verified pack (+ idx) to storage on a helper thread."""

    def __init__(
        self,
        store: RepoStore,
        repo_id: int,
        name: str,
        path: Path,
        index_only: bool = False,
        before: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.index_only = index_only
        self.before = before  # finishes a pack stored already (beside its index PUT)
        self.seconds = 0.0
        self._error: BaseException | None = None
        self._t: threading.Thread | None = None
        if store.storage.local_files:
            # Local storage: two hard links, faster than starting a thread.
            self._run(store, repo_id, path)
            return
        self._t = threading.Thread(target=self._run, args=(store, repo_id, path), daemon=True)
        self._t.start()

    def _run(self, store: RepoStore, repo_id: int, path: Path) -> None:
        t0 = time.perf_counter()
        try:
            if self.index_only:  # the pack is stored (or being finished: before)
                store.upload_pack(repo_id, self.name, path, self.before or _stored)
            else:
                store.upload_pack(repo_id, self.name, path)
        except BaseException as e:  # noqa: BLE001 - re-raised by wait()
            self._error = e
        self.seconds = time.perf_counter() - t0

    def join(self) -> None:
        if self._t is not None:
            self._t.join()

    def wait(self) -> None:
        self.join()
        if self._error is not None:
            raise self._error


def _stored() -> None:
    """Storing a pack that is stored already."""
