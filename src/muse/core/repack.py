"""Keeping a repository small and quick to read: loose objects into a pack, small packs into one.

Commits of a few files write loose objects (one file each), and every fetch adds a pack; left
alone, a repository built by ``muse commit`` holds tens of thousands of loose files, and a
reader that asks each pack in turn slows with every fetch. So, as git's ``gc --auto``, the
commands that add objects end with :func:`auto`: when there are more than ``gc.auto`` loose
objects (estimated from one of the 256 fan-out directories, as git does) or more than
``gc.autoPackLimit`` packs, :func:`repack` writes the loose objects and the small packs into
one new pack laid out like a received one (trees grouped by path, so versions of a directory
compress against each other), then removes what the new pack holds. Large packs (the chunks of
big files, ``BIG_PACK`` and more) stay as they are: rewriting gigabytes of incompressible
chunks would gain nothing.

Nothing is dropped: every object that was there is still there afterwards, reachable or not
(pruning unreachable objects would need the reflog and stashes as roots and a grace period;
it is not done here). The new pack is durable (synced, renamed, directory synced) before any
old file is removed, and a second repack waits for nothing: it skips while ``gc.lock`` is held.
"""

from __future__ import annotations

import os

from muse.core.lockfile import LockFile, LockHeld
from muse.core.pack import closure
from muse.core.record import Record
from muse.core.repo import Repository

#: git's defaults: gc.auto 6700 loose objects, gc.autoPackLimit 50 packs. Ours pack sooner:
#: a pack costs a reader one bisect per lookup, and small repacks are cheap.
AUTO_LOOSE = 1000
AUTO_PACKS = 20
#: Packs of at least this size are kept as they are (git's gc.bigPackThreshold).
BIG_PACK = 64 << 20

_LOCK = "gc"


class RepackResult(Record):
    _fields = ("loose", "packs", "objects", "bytes_before", "bytes_after", "pack")

    def __init__(self) -> None:
        self.loose = 0  # loose objects packed (and removed)
        self.packs = 0  # packs merged (and removed)
        self.objects = 0  # objects in the new pack
        self.bytes_before = 0  # what the packed files took on disk
        self.bytes_after = 0  # the new pack and index
        self.pack: str | None = None  # the new pack's file name


def estimate_loose(repo: Repository) -> int:
    """About how many loose objects there are, in a few directory listings: exact while
    fewer than 128 of the 256 fan-out directories exist, else 256 x the mean of four of them
    (ids are uniform, so a few directories are a fair sample; git samples one)."""
    top = repo.store.objects_dir
    try:
        dirs = [n for n in os.listdir(top) if len(n) == 2]
    except (FileNotFoundError, NotADirectoryError):
        return 0
    sample = dirs if len(dirs) < 128 else [d for d in ("17", "5a", "a3", "f0") if d in dirs]
    total = 0
    for d in sample:
        try:
            total += sum(1 for n in os.listdir(os.path.join(top, d)) if len(n) == 62)
        except (FileNotFoundError, NotADirectoryError):
            continue
    if sample is dirs:
        return total
    return 256 * total // max(len(sample), 1)


def small_packs(repo: Repository) -> list[str]:
    """Paths of the packs a repack would merge (under BIG_PACK, each with its index)."""
    d = repo.store.packs_dir
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    out = []
    for n in sorted(names):
        if not n.endswith(".pack") or n.startswith("."):
            continue
        p = os.path.join(d, n)
        try:
            if os.path.getsize(p) < BIG_PACK and os.path.exists(p[: -len(".pack")] + ".idx"):
                out.append(p)
        except FileNotFoundError:
            continue
    return out


def _limits(repo: Repository) -> tuple[int, int]:
    """(gc.auto, gc.autoPackLimit) from the effective config; 0 turns either off."""
    try:
        gc = repo.effective_config().get("gc", {})
    except Exception:  # noqa: BLE001 - a broken config is reported by the command that reads it
        gc = {}
    if not isinstance(gc, dict):
        gc = {}
    lower = {str(k).lower(): v for k, v in gc.items()}

    def num(key: str, default: int) -> int:
        v = lower.get(key.lower(), default)
        if isinstance(v, str) and v.isdigit():
            v = int(v)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else default

    return num("auto", AUTO_LOOSE), num("autoPackLimit", AUTO_PACKS)


def needed(repo: Repository) -> bool:
    """Whether :func:`auto` would repack now (cheap: two directory listings, then config)."""
    loose = estimate_loose(repo)
    max_loose, max_packs = _limits(repo)
    if max_loose and loose > max_loose:
        return True
    return bool(max_packs) and len(small_packs(repo)) > max_packs


def auto(repo: Repository) -> RepackResult | None:
    """:func:`repack` when :func:`needed`; None when not needed or another repack runs."""
    if not needed(repo):
        return None
    try:
        return repack(repo)
    except LockHeld:
        return None


def repack(repo: Repository) -> RepackResult:
    """Write every loose object and every small pack into one new pack; remove what it holds.

    Raises LockHeld when another repack of this repository is running.
    """
    from muse.core.pack.file import PackFile
    from muse.core.pack.write import write_pack_file

    res = RepackResult()
    store = repo.store
    lock = LockFile(os.path.join(repo.muse_dir, _LOCK), lock=True)
    lock.acquire()
    try:
        loose_ids = list(store.iter_loose_ids())
        packs = small_packs(repo)
        if not loose_ids and len(packs) <= 1:
            return res
        objects: list[tuple[int, bytes]] = []
        seen: set[bytes] = set()
        for path in packs:
            pf = PackFile(path, verify_index=False)
            try:
                for kind, oid, body in pf.iter_objects():
                    if oid not in seen:
                        seen.add(oid)
                        objects.append((kind, bytes(body)))
            finally:
                pf.close()
            res.bytes_before += os.path.getsize(path) + os.path.getsize(_idx(path))
        for oid in loose_ids:
            if oid in seen:
                continue
            found = store._get_loose(oid)
            if found is not None:
                seen.add(oid)
                objects.append(found)
        for oid in loose_ids:
            try:
                res.bytes_before += os.path.getsize(store.loose_path(oid))
            except FileNotFoundError:
                pass
        os.makedirs(store.packs_dir, exist_ok=True)
        new = write_pack_file(store.packs_dir, objects)  # durable before anything goes
        res.objects = new.count
        res.pack = os.path.basename(new.path)
        res.bytes_after = os.path.getsize(new.path) + os.path.getsize(new.idx_path)
        new.close()
        del objects
        for path in packs:
            if os.path.abspath(path) == os.path.abspath(new.path):
                continue  # the merge of what it already held: the same pack
            _unlink(_idx(path))  # the index first: a pack without one is never read
            _unlink(path)
            closure.remove(path)
            res.packs += 1
        for oid in loose_ids:
            _unlink(store.loose_path(oid))
            res.loose += 1
        _remove_empty_fanout(store.objects_dir)
        store.refresh()
        if store._packs is not None:
            store._packs.refresh()
    finally:
        lock.abort()
    return res


def _idx(pack_path: str) -> str:
    return pack_path[: -len(".pack")] + ".idx"


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_empty_fanout(objects_dir: str) -> None:
    try:
        names = os.listdir(objects_dir)
    except FileNotFoundError:
        return
    for n in names:
        if len(n) == 2:
            try:
                os.rmdir(os.path.join(objects_dir, n))
            except OSError:  # not empty, or not a directory
                pass
