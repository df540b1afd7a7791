"""Checkout: make the working tree match a tree, safely and writing only what differs.

Order of work, so that a hostile or conflicting tree changes nothing:
1. validate the whole target tree (every name, case collisions, ``.muse``, modes, object kinds
   and presence, symlink targets) -- refuse before touching the disk;
2. diff it against the base tree (what the working tree was last synced to, from the index),
   and check every path that would change: the file must be unmodified (or already equal to
   the target), no untracked file may be overwritten, and no directory on the way may be a
   symlink or a file -- refuse with the list of paths unless force;
3. remove what left the tree, then write what is new or changed (O_EXCL|O_NOFOLLOW, so
   nothing is ever written through a symlink), then save the index with the new base.
"""

from __future__ import annotations

import gc
import os
import shutil
import stat as _stat
from collections.abc import Callable, Iterable, Sequence

from muse.core import chunking as _chunking
from muse.core.fileio import write_all
from muse.core.index import STORED, Entry, Index, load_index, make_entry, stat_unchanged
from muse.core.journal import (
    begin_checkout,
    end_checkout,
    interrupted_checkout,
    release_dead_lock,
)
from muse.core.objects import (
    BLOB,
    CHUNKED_MODES,
    CHUNKS,
    EMPTY_TREE_ID,
    EXEC_MODES,
    MODE_KIND,
    MODE_LINK,
    MODE_TREE,
    TREE,
    ObjectFormatError,
    decode_tree,
    file_mode,
)
from muse.core.paths import UnsafePath, check_dir_names, check_link_target
from muse.core.record import Record
from muse.core.repo import Repository
from muse.core.store import ObjectStore
from muse.core.treediff import (
    Change,
    TreeGetter,
    TreeMap,
    diff_trees,
    tree_reader,
)
from muse.core.worktree import (
    ProgressSink,
    _blob_id,
    _read_file,
)
from muse.errors import MuseError

_WFLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class CheckoutConflict(MuseError):
    """Local changes or untracked files would be overwritten; nothing was written."""

    def __init__(self, message: str, paths: list[str]) -> None:
        super().__init__(message)
        self.paths = paths


class CheckoutStats(Record):
    _fields = ("written", "removed", "conflicts_forced")

    def __init__(self, written: int = 0, removed: int = 0, conflicts_forced: int = 0) -> None:
        self.written = written
        self.removed = removed
        self.conflicts_forced = conflicts_forced


def validate_tree(repo: Repository, tree_oid: bytes) -> set[bytes]:
    """Check that a tree may be written into a working tree; returns the tree ids visited.

    Raises UnsafePath for anything unsafe, missing or malformed.
    """
    return set(_validated_trees(repo, tree_oid))


def _validated_trees(
    repo: Repository, tree_oid: bytes, base: bytes | None = None
) -> dict[bytes, TreeMap]:
    """Validate the whole tree (as validate_tree); returns every tree decoded, by id.

    Each tree is decoded (with full validation) once; the checkout then walks and diffs
    these maps instead of decoding the trees a second time. Blob presence is checked for
    all blobs together at the end (a set per pack), not one lookup through every layer
    per file.

    ``base``: the tree the working tree was made to match, validated when it was written. A
    subtree the target has at the same path with the same id is that very tree, checked at
    that depth: it is skipped, and in a changed directory only the entries that differ from
    the base's need their objects looked up. So a checkout or pull of a small change costs
    the change, not the whole tree (XL: 25,000 blob lookups for a one-file pull).
    """
    store = repo.store
    maps: dict[bytes, TreeMap] = {}
    blobs: dict[bytes, str] = {}  # blob id -> first path that needs it (for the message)
    chunked: dict[bytes, str] = {}  # chunk list id -> first path (large files)
    stack: list[tuple[bytes, str]] = []
    base_at: dict[str, bytes] = {}  # path -> the base's subtree id there (same walk)
    if tree_oid != EMPTY_TREE_ID:
        stack.append((tree_oid, ""))
        if base is not None and base != EMPTY_TREE_ID:
            base_at[""] = base
    walked: dict[bytes, int] = {}  # tree id -> the longest prefix (bytes) it was checked at
    while stack:
        oid, where = stack.pop()
        if oid == EMPTY_TREE_ID:
            continue  # (the empty tree need not be stored: it writes nothing)
        was = base_at.pop(where, None)
        if was == oid:
            continue  # unchanged since it was written here: checked then
        bmap = _base_map(store, was) if was is not None else {}
        depth = len(where.encode("utf-8", "surrogateescape"))
        if walked.get(oid, -1) >= depth:
            continue
        walked[oid] = depth
        known = maps.get(oid)
        if known is not None:
            # the same tree deeper down: only the path lengths can differ
            check_dir_names(list(known), where)
            prefix = f"{where}/" if where else ""
            stack.extend((e[1], prefix + n) for n, e in known.items() if e[0] == MODE_TREE)
            continue
        found = store.get(oid)
        if found is None:
            raise UnsafePath(f"tree {oid.hex()} ({where or 'root'}) is missing")
        if found[0] != TREE:
            raise UnsafePath(f"{where or 'root'}: {oid.hex()[:12]} is not a tree")
        try:
            entries = decode_tree(found[1])
        except ObjectFormatError as err:
            raise UnsafePath(f"malformed tree at {where or 'root'}: {err}") from None
        names = [e.name for e in entries]
        check_dir_names(names, where)
        tmap: TreeMap = {}
        prefix = f"{where}/" if where else ""
        subtrees: list[tuple[bytes, str]] = []
        for e in entries:
            mode = e.mode
            tmap[e.name] = (mode, e.id)
            before = bmap.get(e.name)
            if mode == MODE_TREE:
                subtrees.append((e.id, prefix + e.name))
                if before is not None and before[0] == MODE_TREE:
                    base_at[prefix + e.name] = before[1]
            elif before == (mode, e.id):
                continue  # written from the base, objects and all
            elif mode == MODE_LINK:
                path = prefix + e.name
                body = store.get(e.id)
                if body is None or body[0] != BLOB:
                    raise UnsafePath(f"symlink {path}: blob {e.id.hex()[:12]} missing")
                check_link_target(body[1], path)
            elif mode in CHUNKED_MODES:
                if e.id not in chunked:
                    chunked[e.id] = prefix + e.name
            elif e.id not in blobs:
                blobs[e.id] = prefix + e.name
        maps[oid] = tmap
        stack.extend(reversed(subtrees))  # depth first, in name order
    for cid, path in chunked.items():  # a large file: its chunk list, then its chunks
        found = store.get(cid)
        if found is None or found[0] != CHUNKS:
            raise UnsafePath(f"{path}: chunk list {cid.hex()[:12]} is missing")
        try:
            for chunk in _chunking.chunk_ids(found[1]):
                blobs.setdefault(chunk, path)
        except ObjectFormatError as err:
            raise UnsafePath(f"{path}: malformed chunk list: {err}") from None
    if blobs:
        missing = _missing(repo, blobs.keys())
        if missing:
            first = min(blobs[o] for o in missing)
            oid = next(o for o in missing if blobs[o] == first)
            raise UnsafePath(f"{first}: blob {oid.hex()[:12]} is missing")
    return maps


def _base_map(store: ObjectStore, oid: bytes) -> TreeMap:
    """name -> (mode, id) of a base tree (empty when it is not there: check everything)."""
    found = store.get(oid)
    if found is None or found[0] != TREE:
        return {}
    try:
        return {e.name: (e.mode, e.id) for e in decode_tree(found[1])}
    except ObjectFormatError:
        return {}


def _missing(repo: Repository, oids: Iterable[bytes]) -> set[bytes]:
    """The ids of oids that the store has neither in a pack nor loose."""
    store = repo.store
    left = set(oids)
    packs = store.packs
    if packs is not None:
        for pf in packs.packs:
            if not left:
                break
            has = pf.has
            left = {o for o in left if not has(o)}
    return {o for o in left if not store.has(o)}


def _map_reader(repo: Repository, maps: dict[bytes, TreeMap]) -> TreeGetter:
    """A tree getter that answers from already decoded trees, else from the store."""
    fallback = tree_reader(repo.store)

    def get(oid: bytes | None) -> TreeMap:
        if oid is None:
            return {}
        t = maps.get(oid)
        return t if t is not None else fallback(oid)

    return get


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _matches(full: str, st: os.stat_result, want: tuple[int, bytes], idx: Index, rel: str) -> bool:
    """Whether the file at full holds exactly want (mode, id); uses the stat cache first."""
    mode, oid = want
    m = st.st_mode
    if _stat.S_ISLNK(m):
        if mode != MODE_LINK:
            return False
        return _blob_id(os.fsencode(os.readlink(full))) == oid
    if not _stat.S_ISREG(m) or mode == MODE_LINK:
        return False
    if file_mode(bool(m & 0o100), st.st_size) != mode:
        return False
    c = idx.entries.get(rel)
    if c is not None and stat_unchanged(c, st, idx.racy_ns):
        return c[0] == oid
    if mode in CHUNKED_MODES:
        return _chunking.file_chunks(full)[0] == oid
    return _blob_id(_read_file(full, st.st_size)) == oid


def checkout_tree(
    repo: Repository,
    tree_oid: bytes,
    force: bool = False,
    index: Index | None = None,
    progress: ProgressSink | None = None,
) -> CheckoutStats:
    """Make the working tree match tree_oid (see the module docstring); saves the index.

    Call it before moving HEAD/the branch: it compares against the tree the working tree was
    last synced to (recorded in the index), not against HEAD.
    """
    gc_was = gc.isenabled()
    gc.disable()  # many small tuples, no cycles: collections would only cost time
    try:
        return _checkout(repo, tree_oid, force, index, progress)
    finally:
        if gc_was:
            gc.enable()


def _checkout(
    repo: Repository,
    tree_oid: bytes,
    force: bool,
    index: Index | None,
    progress: ProgressSink | None = None,
) -> CheckoutStats:
    if index is not None:
        return _checkout_with(repo, tree_oid, force, index, progress)
    release_dead_lock(repo.muse_dir)  # left by a killed checkout: it is finished below
    with load_index(repo.muse_dir, lock=True) as idx:  # as git: index.lock before any write
        return _checkout_with(repo, tree_oid, force, idx, progress)


def _checkout_with(
    repo: Repository,
    tree_oid: bytes,
    force: bool,
    idx: Index,
    progress: ProgressSink | None = None,
) -> CheckoutStats:
    journal = interrupted_checkout(repo.muse_dir)
    if journal is not None:
        # A checkout was killed while writing: its precheck had passed, so what is on disk
        # at its paths is its own work, possibly half written. Finish it first (rewriting
        # those paths), then do what was asked.
        jbase, jtarget = journal
        _run(repo, idx, jbase, jtarget, force=False, resume=True)
    base = idx.base if idx.exists else repo.head_tree()
    return _run(repo, idx, base, tree_oid, force, resume=False, progress=progress)


def _run(
    repo: Repository,
    idx: Index,
    base: bytes | None,
    tree_oid: bytes,
    force: bool,
    resume: bool,
    progress: ProgressSink | None = None,
) -> CheckoutStats:
    maps = _validated_trees(repo, tree_oid, None if resume else base)
    root = repo.root
    if force:
        changes = _forced_changes(repo, idx, base, tree_oid)
    else:
        changes = list(diff_trees(_map_reader(repo, maps), base, tree_oid))
    stats = CheckoutStats()

    only_muse = base in (None, EMPTY_TREE_ID) and all(n == ".muse" for n in os.listdir(root))
    if resume:
        # every written path is rewritten: nothing there is trusted, nothing is a conflict
        changes = [(rel, new if old is None else old, new) for rel, old, new in changes]
        only_muse = False
    elif not only_muse:
        _precheck(repo, idx, changes, force)
    if changes:
        begin_checkout(repo.muse_dir, base, tree_oid)

    # 1. removals (files that left the tree, or whose path becomes a directory)
    dirs_to_prune: set[str] = set()
    for rel, _old, new in changes:
        if new is not None:
            continue
        full = os.path.join(root, rel)
        st = _lstat(full)
        if st is not None and not _stat.S_ISDIR(st.st_mode):
            os.unlink(full)
            stats.removed += 1
        idx.entries.pop(rel, None)
        parent = os.path.dirname(rel)
        while parent:
            dirs_to_prune.add(parent)
            parent = os.path.dirname(parent)
    for d in sorted(dirs_to_prune, key=len, reverse=True):
        try:
            os.rmdir(os.path.join(root, d))
        except OSError:
            pass

    # 2. writes: directories first (serially), then files on a few threads, because the
    # time goes into the kernel (open/write release the GIL) and cores are otherwise idle
    made: set[str] = {""}
    jobs = [(rel, old, new) for rel, old, new in changes if new is not None]
    for rel, _old, _new in jobs:
        parent = rel.rpartition("/")[0]
        if parent not in made:
            _ensure_dir(root, parent, made, fresh=only_muse)
    writer = _Writer(repo, idx, root, fresh=only_muse)
    if progress is not None:
        progress.start("Restoring files", len(jobs))
        writer.progress = progress
    # As many threads as cores (at least 2): a third thread on 2 cores only adds GIL
    # hand-offs and directory-lock contention (measured: restore 1.96 -> 1.80 s at XL).
    n_threads = max(2, min(4, os.cpu_count() or 1)) if len(jobs) >= 512 else 1
    if n_threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        size = (len(jobs) + n_threads * 4 - 1) // (n_threads * 4)
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        with ThreadPoolExecutor(n_threads) as ex:
            results = list(ex.map(writer.run, chunks))
    else:
        results = [writer.run(jobs)]
    if progress is not None:
        progress.finish_line()
    for written, new_entries in results:
        stats.written += written
        idx.entries.update(new_entries)
    idx.base = tree_oid
    idx.save_settled(e for _, new_entries in results for e in new_entries.values())
    end_checkout(repo.muse_dir)
    return stats


class _Writer:
    """Writes a list of (path, old, new) changes; safe to run on several threads at once."""

    def __init__(self, repo: Repository, idx: Index, root: str, fresh: bool) -> None:
        self.store = repo.store
        self.idx = idx
        self.root = root
        self.fresh = fresh
        self.progress: ProgressSink | None = None  # files (and large files' bytes) written

    def run(self, jobs: Sequence[Change]) -> tuple[int, dict[str, Entry]]:
        store_get = _blob_reader(self.store)
        root = self.root
        fresh = self.fresh
        entries: dict[str, Entry] = {}
        written = 0
        for rel, old, new in jobs:
            assert new is not None  # (jobs hold no removals)
            mode, oid = new
            full = f"{root}/{rel}"
            fd = -1
            if not fresh and (old is not None or mode == MODE_LINK):
                pass  # something may be there: look first
            elif not fresh:
                # A new path: usually nothing is there (the precheck just looked), so try
                # to create it at once and look only if something appeared in the way.
                found = store_get(oid)
                if found is None or found[0] != MODE_KIND[mode]:
                    raise UnsafePath(f"{rel}: blob {oid.hex()[:12]} is missing or not a blob")
                try:
                    fd = os.open(full, _WFLAGS, 0o777 if mode in EXEC_MODES else 0o666)
                except FileExistsError:
                    pass
                else:
                    entries[rel] = self._write(fd, oid, mode, found[1], store_get, self.progress)
                    written += 1
                    if self.progress is not None:
                        self.progress.add_objects()
                    continue
            if not fresh:
                st = _lstat(full)
                if st is not None:
                    if _stat.S_ISDIR(st.st_mode):
                        shutil.rmtree(full)  # precheck allowed it: empty or forced
                    elif (
                        old is None and mode != MODE_LINK and _matches(full, st, new, self.idx, rel)
                    ):
                        entries[rel] = _entry(oid, mode, st)
                        continue
                    else:
                        os.unlink(full)
            found = store_get(oid)
            if found is None or found[0] != MODE_KIND[mode]:
                raise UnsafePath(f"{rel}: blob {oid.hex()[:12]} is missing or not a blob")
            data = found[1]
            if mode == MODE_LINK:
                os.symlink(os.fsdecode(data), full)
                st = os.lstat(full)
                entries[rel] = (
                    oid,
                    mode | STORED,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_ctime_ns,
                    st.st_ino,
                )
            else:
                fd = os.open(full, _WFLAGS, 0o777 if mode in EXEC_MODES else 0o666)
                entries[rel] = self._write(fd, oid, mode, data, store_get, self.progress)
            written += 1
            if self.progress is not None:
                self.progress.add_objects()
        return written, entries

    @staticmethod
    def _write(
        fd: int,
        oid: bytes,
        mode: int,
        data: bytes,
        read: Callable[[bytes], tuple[int, bytes] | None],
        progress: ProgressSink | None = None,
    ) -> Entry:
        """Write data (for a large file: the chunks its chunk list names, one at a time) to
        the new file fd, close it; its index entry from fstat (no lstat)."""
        try:
            if mode in CHUNKED_MODES:
                try:
                    on_bytes = progress.add_bytes if progress is not None else None
                    _chunking.restore(fd, data, read, on_bytes)
                except ObjectFormatError as err:
                    raise UnsafePath(f"blob {oid.hex()[:12]}: {err}") from None
            else:
                write_all(fd, data)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return (oid, mode | STORED, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _blob_reader(store: ObjectStore) -> Callable[[bytes], tuple[int, bytes] | None]:
    """store.get, minus two layers of calls when everything is in one pack (a clone)."""
    packs = store.packs
    if packs is None or len(packs.packs) != 1:
        return store.get
    pf_get = packs.packs[0].get
    get = store.get
    warm = store.warm_objects.get  # what the receive before it kept (muse.core.warm); the
    # dict is the store's own, filled and emptied in place

    def read(oid: bytes) -> tuple[int, bytes] | None:
        found = warm(oid) or pf_get(oid)
        return found if found is not None else get(oid)

    return read


def _forced_changes(
    repo: Repository, idx: Index, base: bytes | None, target: bytes
) -> list[Change]:
    """Changes from what is on disk now to target, sparing untracked files not in the way."""
    from muse.core.worktree import scan

    res, _ = scan(repo, idx)
    changes = list(diff_trees(tree_reader(repo.store, res.trees), res.tree, target))
    new_dirs: set[str] = set()
    for rel, _old, new in changes:
        if new is not None:
            parent = os.path.dirname(rel)
            while parent and parent not in new_dirs:
                new_dirs.add(parent)
                parent = os.path.dirname(parent)
    get = tree_reader(repo.store)

    def tracked(rel: str) -> bool:
        tree = base
        parts = rel.split("/")
        for i, p in enumerate(parts):
            ent = get(tree).get(p)
            if ent is None:
                return False
            if i == len(parts) - 1:
                return ent[0] != MODE_TREE
            if ent[0] != MODE_TREE:
                return False
            tree = ent[1]
        return False

    return [c for c in changes if c[2] is not None or c[0] in new_dirs or tracked(c[0])]


def _entry(oid: bytes, mode: int, st: os.stat_result) -> Entry:
    return make_entry(oid, mode | STORED, st)


def _ensure_dir(root: str, rel: str, made: set[str], fresh: bool) -> None:
    """Create rel and its parents; an existing component must be a real directory."""
    parts = rel.split("/")
    cur = ""
    for p in parts:
        cur = f"{cur}/{p}" if cur else p
        if cur in made:
            continue
        full = os.path.join(root, cur)
        if fresh:
            os.mkdir(full)
        else:
            st = _lstat(full)
            if st is None:
                os.mkdir(full)
            elif not _stat.S_ISDIR(st.st_mode):
                raise UnsafePath(f"refusing to write through {cur}: not a directory")
        made.add(cur)


def _precheck(
    repo: Repository,
    idx: Index,
    changes: list[Change],
    force: bool,
) -> None:
    """Refuse (CheckoutConflict / UnsafePath) before anything is written."""
    root = repo.root
    conflicts: list[str] = []
    deleted = {rel for rel, old, new in changes if old is not None and new is None}
    dir_ok: dict[str, bool] = {"": True}

    def parent_ok(rel: str) -> bool:
        """Whether every directory above rel can be written into (iterative: trees may be
        thousands of levels deep)."""
        chain = []
        parent = os.path.dirname(rel)
        while parent not in dir_ok:
            chain.append(parent)
            parent = os.path.dirname(parent)
        ok = dir_ok[parent]
        for d in reversed(chain):  # from the top down
            if ok:
                st = _lstat(os.path.join(root, d))
                if st is not None and not _stat.S_ISDIR(st.st_mode):
                    # a file or symlink where a directory must go: fine only if we remove it
                    ok = d in deleted
                    if _stat.S_ISLNK(st.st_mode) and d not in deleted:
                        raise UnsafePath(f"refusing to write through the symlink {d}")
            dir_ok[d] = ok
        return ok

    for rel, old, new in changes:
        full = os.path.join(root, rel)
        if new is not None and not parent_ok(rel):
            conflicts.append(rel)
            continue
        if not dir_ok.get(os.path.dirname(rel), True):
            continue
        st = _lstat(full)
        if st is None:
            continue
        if _stat.S_ISDIR(st.st_mode):
            if new is None:
                continue  # was a file, now a dir in the worktree: leave it
            if _only_tracked(full, rel, deleted) or force:
                continue
            conflicts.append(rel + "/")
            continue
        if old is not None and _matches(full, st, old, idx, rel):
            continue
        if new is not None and _matches(full, st, new, idx, rel):
            continue
        conflicts.append(rel)
    if conflicts and not force:
        more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        shown = ", ".join(conflicts[:5]) + more
        raise CheckoutConflict(
            f"your local changes or untracked files would be overwritten: {shown} "
            "(commit them, move them away, or use --force)",
            conflicts,
        )


def _only_tracked(full: str, rel: str, deleted: set[str]) -> bool:
    """A directory that holds nothing but tracked files this checkout deletes (an explicit
    stack, not os.walk, which recurses in Python 3.11)."""
    stack = [(full, rel)]
    while stack:
        path, here = stack.pop()
        try:
            with os.scandir(path) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                stack.append((e.path, f"{here}/{e.name}"))
            elif f"{here}/{e.name}" not in deleted:
                return False
    return True


__all__ = [
    "CheckoutConflict",
    "CheckoutStats",
    "UnsafePath",
    "checkout_tree",
    "validate_tree",
]
