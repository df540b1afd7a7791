"""``musehub gc``: drop the objects no ref reaches any more, while pushes and clones go on.

Force pushes and branch or tag deletions leave objects no ref reaches. For each repository,
gc reads its refs and packs, walks everything the refs reach, and then:

- packs younger than the grace (``gc_grace_s``, ``--grace``; git's gc.pruneExpire) are kept
  whole, and everything their objects reach is kept too (a push that landed a moment ago
  and whose branch was deleted at once loses nothing yet);
- older packs that hold only reachable objects are kept; packs with nothing reachable are
  dropped; the others are rewritten, all into one new pack of their live objects (objects
  a kept pack holds already are not copied again);
- the new pack is written in quarantine, stored under a ledger row, and one transaction
  swaps the packs rows (``dbops.replace_packs``); the replaced packs stay in storage for
  REPACK_GRACE_S under ledger rows (readers, clone manifests and URLs that still name them),
  then the periodic sweep deletes them: that is when their bytes are freed.

Why no push is hurt. A push verifies connectivity against the packs it lists
(``RepoStore.reader``) and later, in its ref transaction, moves refs to objects that rest on
that listing; if gc's swap came in between and dropped one of those objects, the new ref
would reach a hole. The swap is fenced three ways:

1. It happens only if the refs and the set of packs are exactly those gc read: a push (or
   a deletion, or a repack) that committed since loses gc the round (gc reads again, a few
   times, then postpones the repository to its next run).
2. It happens only if no push of the repository is in flight. A push that carries objects
   writes its ledger row (state ``storing``, or ``verifying`` for a presigned upload) and
   commits it *before* it lists the packs, and only its ref transaction (or its refusal)
   ends that row. The swap's transaction checks for such rows after it took the
   repository's lock (``dbops.gc_fence``: PostgreSQL's advisory lock, which every pack
   listing takes shared; SQLite's write lock, which the ledger row's insert needs too). So
   either the swap sees the push's row and stands down, or the push's row committed after
   the check, its listing waited for the swap to commit, and it verifies against the
   packs after gc: objects gc dropped are missing to it, it is refused with
   ``missing_objects`` before anything moved, and the client sends them (``muse push``
   does so by itself).
3. A push that carries no objects (a branch or tag created at a commit the hub already
   has) is fenced the same way: it writes a ``storing`` row that names no key
   (``receive.Receiver._start_fence``) before it lists the packs, ended by its ref
   transaction or its refusal. As a defence in depth every run starts by walking each
   repository's refs, and after its swaps reads them again: a hole left by anything else
   is repaired by putting the replaced packs back while they are still kept (see above).

``--dry-run`` writes nothing to storage or the database (the new pack is written to a temp
file only, to measure it) and prints what a run would do.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from muse.core.objects import (
    BLOB,
    CHUNKS,
    COMMIT,
    TAG,
    TREE,
    chunks_refs,
    commit_refs,
    tag_refs,
    tree_refs,
)
from muse.core.pack.cache import BlockCache
from muse.core.pack.file import PackFile
from muse.core.pack.packset import PackList
from musehub.protocol import dbops
from musehub.protocol.records import CANCELLED, PackInfo
from musehub.protocol.repostore import RepoStore

log = logging.getLogger("musehub.protocol")

ATTEMPTS = 3  # rounds a busy repository may cost gc before it is left to the next run
SETTLE_S = 0.0  # wait after the swaps before the refs are read again (point 3 above)
REPAIR_MARGIN_S = 600  # a replaced pack due for deletion sooner is not brought back


class Lost(Exception):
    """The repository changed between gc's read and its swap."""


@dataclass
class RepoResult:
    """What gc did (or, in a dry run, would do) to one repository."""

    name: str
    packs_before: int = 0
    packs_after: int = 0
    objects_dropped: int = 0
    bytes_freed: int = 0
    #: Why nothing was done (a push in flight, refs moving, a hole); None when done.
    postponed: str | None = None
    restored: int = 0  # replaced packs put back to fill a hole

    def line(self, dry_run: bool) -> str:
        restored = f", restored {self.restored} replaced packs" if self.restored else ""
        if self.postponed is not None:
            return f"{self.name}: postponed ({self.postponed}){restored}"
        verb = "would drop" if dry_run else "dropped"
        free = "would free" if dry_run else "freed"
        out = (
            f"{self.name}: packs {self.packs_before} -> {self.packs_after}, "
            f"{verb} {self.objects_dropped} objects, {free} {self.bytes_freed} bytes"
        )
        return out + restored


@dataclass
class Report:
    dry_run: bool
    repos: list[RepoResult] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether a repository could not be collected for an error (not merely busy)."""
        return any((r.postponed or "").startswith("failed") for r in self.repos)

    def lines(self) -> list[str]:
        out = [r.line(self.dry_run) for r in self.repos]
        before = sum(r.packs_before for r in self.repos)
        after = sum(r.packs_after for r in self.repos)
        dropped = sum(r.objects_dropped for r in self.repos)
        freed = sum(r.bytes_freed for r in self.repos)
        postponed = sum(1 for r in self.repos if r.postponed is not None)
        verb = "would drop" if self.dry_run else "dropped"
        free = "would free" if self.dry_run else "freed"
        out.append(
            f"total: {len(self.repos)} repositories, packs {before} -> {after}, "
            f"{verb} {dropped} objects, {free} {freed} bytes ({_human(freed)})"
            + (f", {postponed} postponed" if postponed else "")
        )
        if self.dry_run:
            out.append("dry run: nothing was changed")
        return out


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    raise AssertionError("unreachable")


def reachable(reader: PackList, roots: Iterable[bytes]) -> tuple[set[bytes], set[bytes]]:
    """(reached ids, missing ids) from ``roots``: commits, trees, tags and chunk lists are
    read and followed; blobs are looked up in the indexes only, never read."""
    live: set[bytes] = set()
    missing: set[bytes] = set()
    stack = list(dict.fromkeys(roots))
    while stack:
        oid = stack.pop()
        if oid in live or oid in missing:
            continue
        kind = reader.kind(oid)
        if kind is None:
            missing.add(oid)
            continue
        live.add(oid)
        if kind == BLOB:
            continue
        got = reader.get(oid)
        if got is None:
            continue
        body = got[1]
        if kind == TREE:
            ids = tree_refs(body)[1]
            stack.extend(x for x in _split(ids) if x not in live)
        elif kind == COMMIT:
            tree, parents = commit_refs(body)
            stack.append(tree)
            stack.extend(parents)
        elif kind == TAG:
            stack.append(tag_refs(body)[0])
        elif kind == CHUNKS:
            stack.extend(x for x in _split(chunks_refs(body)) if x not in live)
    return live, missing


def _split(ids: bytes) -> Iterator[bytes]:
    return (ids[i : i + 32] for i in range(0, len(ids), 32))


@dataclass
class _Plan:
    """What one round decided, from one read of refs and packs."""

    refs: dict[str, bytes]
    infos: list[PackInfo]
    affected: list[PackInfo]
    keep: set[bytes]  # live ids the new pack must hold
    dropped: int


class Collector:
    """Garbage collection of the repositories of one hub (see the module docstring)."""

    def __init__(self, store: RepoStore, grace_s: float, dry_run: bool = False) -> None:
        self.store = store
        self.db = store.db
        self.grace_s = grace_s
        self.dry_run = dry_run

    def run(self, repo_ids: list[int] | None = None, settle_s: float = SETTLE_S) -> Report:
        report = Report(self.dry_run)
        with self.db.session(readonly=True) as s:
            repos = dbops.repo_owners(s, repo_ids)
        swapped: list[tuple[int, RepoResult, dict[str, bytes]]] = []
        for repo_id, owner_id, name in repos:
            result = RepoResult(name)
            report.repos.append(result)
            try:
                refs = self.collect(repo_id, owner_id, result)
            except Exception as e:  # noqa: BLE001 - one repository's trouble stops no other
                log.exception("gc of %s failed", name)
                result.postponed = f"failed: {type(e).__name__}: {e}"
                continue
            if refs is not None:
                swapped.append((repo_id, result, refs))
        if swapped and not self.dry_run:
            time.sleep(settle_s)
            for repo_id, result, refs in swapped:
                with self.db.session(readonly=True) as s:
                    now = dbops.read_refs(s, repo_id)
                if now != refs:
                    result.restored += self.repair(repo_id, now)
        return report

    # ------------------------------------------------------------------ one repository
    def collect(self, repo_id: int, owner_id: int, result: RepoResult) -> dict[str, bytes] | None:
        """Fill ``result``; returns the refs a swap was made against (None: no swap)."""
        reason = "the repository kept changing"
        for _ in range(ATTEMPTS):
            plan = self._plan(repo_id, owner_id, result)
            if plan is None:
                return None
            qdir = self.store.quarantine_dir()
            try:
                info, path = self._write(repo_id, plan, qdir)
                freed = sum(i.bytes for i in plan.affected) - (info.bytes if info else 0)
                result.bytes_freed = freed
                result.objects_dropped = plan.dropped
                result.packs_after = len(plan.infos) - len(plan.affected) + (1 if info else 0)
                if self.dry_run:
                    return None
                try:
                    self._swap(repo_id, owner_id, plan, info, path)
                except Lost as e:
                    reason = str(e)
                    continue
                log.info("gc %s: %s", result.name, result.line(False))
                return plan.refs
            finally:
                shutil.rmtree(qdir, ignore_errors=True)
        result.packs_after = result.packs_before
        result.objects_dropped = result.bytes_freed = 0
        result.postponed = reason
        return None

    def _plan(self, repo_id: int, owner_id: int, result: RepoResult) -> _Plan | None:
        now = time.time()
        with self.db.session(readonly=True) as s:
            refs = dbops.read_refs(s, repo_id)
            dbops.gc_fence(s, repo_id)
            infos = dbops.pack_infos(s, repo_id)
            ages = dbops.pack_ages(s, repo_id)
            busy = dbops.pushes_in_flight(s, repo_id, now)
        result.packs_before = result.packs_after = len(infos)
        if busy:
            result.postponed = "a push is in progress"
            return None
        if not infos:
            return None
        cache = BlockCache()
        packs = [self.store.pack(repo_id, i.name, cache) for i in reversed(infos)]
        try:
            return self._decide(repo_id, owner_id, result, refs, infos, ages, packs, cache)
        finally:
            for pf in packs:
                pf.close()

    def _decide(
        self,
        repo_id: int,
        owner_id: int,
        result: RepoResult,
        refs: dict[str, bytes],
        infos: list[PackInfo],
        ages: dict[str, float],
        packs: list[PackFile],
        cache: BlockCache,
    ) -> _Plan | None:
        reader = PackList(packs, cache)
        by_name = dict(zip((i.name for i in reversed(infos)), packs, strict=True))
        cutoff = time.time() - self.grace_s
        young = {i.name for i in infos if ages.get(i.name, 0.0) > cutoff}
        roots = list(refs.values())
        young_ids: set[bytes] = set()
        for name in young:
            for oid, kind in by_name[name].kinds():
                young_ids.add(oid)
                if kind != BLOB:
                    roots.append(oid)
        live, missing = reachable(reader, roots)
        if missing:
            # Never make a hole bigger: fill it from replaced packs, drop nothing this run.
            if not self.dry_run:
                result.restored += self.repair(repo_id, refs)
            result.postponed = f"{len(missing)} objects the refs reach are missing"
            return None
        live |= young_ids
        kept: list[PackInfo] = []
        affected: list[PackInfo] = []
        for i in infos:
            ids = by_name[i.name].ids()
            if i.name in young or all(oid in live for oid in ids):
                kept.append(i)
            else:
                affected.append(i)
        if not affected:
            return None
        covered: set[bytes] = set()
        for i in kept:
            covered.update(by_name[i.name].ids())
        before: set[bytes] = set(covered)
        keep: set[bytes] = set()
        for i in affected:
            for oid in by_name[i.name].ids():
                before.add(oid)
                if oid in live and oid not in covered:
                    keep.add(oid)
        dropped = len(before) - len(covered) - len(keep)
        return _Plan(refs, infos, affected, keep, dropped)

    def _write(self, repo_id: int, plan: _Plan, qdir: Path) -> tuple[PackInfo | None, Path | None]:
        """The new pack of the affected packs' live objects (None: nothing of them lives)."""
        if not plan.keep:
            return None, None
        cache = BlockCache()
        packs = [self.store.pack(repo_id, i.name, cache) for i in plan.affected]
        written: set[bytes] = set()

        def objects() -> Iterator[tuple[int, bytes]]:
            for pf in packs:
                for kind, oid, body in pf.iter_objects():
                    if oid in plan.keep and oid not in written:
                        written.add(oid)
                        yield kind, body

        try:
            return self.store.write_pack(qdir, objects())
        finally:
            for pf in packs:
                pf.close()

    def _swap(
        self,
        repo_id: int,
        owner_id: int,
        plan: _Plan,
        info: PackInfo | None,
        path: Path | None,
    ) -> None:
        """Store the new pack, then swap the rows in one fenced transaction; raises Lost."""
        work_id = None
        if info is not None and path is not None:
            work_id = self.store.store_new_pack(repo_id, owner_id, info, path)
        old = [i.name for i in plan.affected]
        try:
            with self.db.session() as s:
                dbops.gc_fence(s, repo_id, exclusive=True)
                if dbops.read_refs(s, repo_id) != plan.refs:
                    raise Lost("refs moved during gc")
                names = {i.name for i in dbops.pack_infos(s, repo_id)}
                if names != {i.name for i in plan.infos}:
                    raise Lost("packs changed during gc")
                if dbops.pushes_in_flight(s, repo_id, time.time(), but=work_id):
                    raise Lost("a push is in progress")
                dbops.replace_packs(s, repo_id, old, info)
                self.store.retire(s, repo_id, owner_id, work_id, old)
        except (Lost, dbops.StaleRef) as e:
            if info is not None:
                self.store.delete_pack(repo_id, info.name)
            raise Lost(str(e) if isinstance(e, Lost) else "packs changed during gc") from None
        if info is not None and path is not None:
            try:
                self.store.adopt(info.name, path)
            except OSError:
                pass  # downloaded again on first use

    # ------------------------------------------------------------------------ repair
    def repair(self, repo_id: int, refs: dict[str, bytes]) -> int:
        """Fill a hole the refs reach from packs replaced but still in storage: each one
        holding a missing object gets its row back. Returns how many came back."""
        from musehub.storage import NotFound

        reader, _ = self.store.reader(repo_id)
        _, missing = reachable(reader, refs.values())
        restored = 0
        while missing:
            with self.db.session(readonly=True) as s:
                now = time.time()
                sweep_grace = float(self.store.settings.sweep_grace_s)
                retired = dbops.retired_packs(
                    s, repo_id, now + REPAIR_MARGIN_S, now - sweep_grace + REPAIR_MARGIN_S
                )
            back: list[tuple[str, PackInfo]] = []
            for row_id, name in retired:
                try:
                    pf = self.store.pack(repo_id, name)
                except (NotFound, FileNotFoundError):
                    continue
                try:
                    if any(pf.has(oid) for oid in missing):
                        size = Path(pf.path).stat().st_size
                        back.append((row_id, PackInfo(name, pf.count, pf.count_kind(BLOB), size)))
                finally:
                    pf.close()
            if not back:
                log.error("repo %d: %d reachable objects are missing", repo_id, len(missing))
                break
            with self.db.session() as s:
                current = {i.name for i in dbops.pack_infos(s, repo_id)}
                for row_id, info in back:
                    if info.name not in current:
                        dbops.insert_pack(s, repo_id, info)
                    dbops.set_deferred_state(s, row_id, CANCELLED)
            restored += len(back)
            log.warning("repo %d: restored %d replaced packs to fill a hole", repo_id, len(back))
            reader, _ = self.store.reader(repo_id)
            _, still = reachable(reader, refs.values())
            if still >= missing:
                break
            missing = still
        return restored
