"""The working tree: scanning it into trees (with the stat cache), status and snapshots.

A scan walks the working tree once with os.scandir, reuses the cached id of every file whose
stat matches the index, hashes the others, and computes every directory's tree id bottom-up
in memory. Comparing the root id with HEAD's tree answers "anything changed?" in one step,
and a tree diff that descends only into differing subtrees lists what changed.

Decisions (docs/format.md): symlinks are stored as MODE_LINK blobs holding the target (never
followed); directories without tracked files are not recorded; sockets, fifos and devices are
skipped; names that are not valid UTF-8 or that would be refused at checkout (``.muse`` in any
case) are skipped and reported.
"""

from __future__ import annotations

import hashlib
import os
import stat as _stat
from collections.abc import Generator, Iterable, Iterator
from itertools import chain
from typing import TYPE_CHECKING, NamedTuple, Protocol

from muse.core import chunking as _chunking
from muse.core.fileio import read_all
from muse.core.index import (
    MODE_MASK,
    STORED,
    Entry,
    Index,
    load_index,
    make_entry,
    stat_unchanged,
)
from muse.core.objects import (
    BLOB,
    CHUNKED_MIN,
    CHUNKED_MODES,
    CHUNKS,
    EMPTY_TREE_ID,
    EXEC_MODES,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    MODE_TREE,
    TREE,
    encode_chunks,
    encode_tree,
    file_mode,
    object_id,
)
from muse.core.paths import is_muse_dir_name, name_problem
from muse.core.record import Record
from muse.core.repo import Repository
from muse.core.store import ObjectStore
from muse.core.treediff import Change, diff_trees, tree_reader

if TYPE_CHECKING:  # pragma: no cover
    from muse.core import ignore as _ignore

#: The ignore file's name (muse.core.ignore, and with it re, is imported only if one exists).
IGNORE_FILE = ".museignore"

_BLOB_HDR = b"blob %d\0"
_BIG = 16 << 20
PACK_THRESHOLD = 128  # more new objects than this go into one pack instead of loose files
PACK_BYTES = 1 << 20  # ... and so do new objects of more bytes than this


class ProgressSink(Protocol):
    """What long operations report to (the client's Progress line, or nothing)."""

    def start(self, phase: str, total_objects: int = 0, total_bytes: int = 0) -> None: ...
    def add_objects(self, n: int = 1) -> None: ...
    def add_bytes(self, n: int) -> None: ...
    def finish_line(self) -> None: ...


class ScanResult(Record):
    """What a scan found."""

    _fields = ("tree", "trees", "skipped", "hashed")

    def __init__(
        self,
        tree: bytes = EMPTY_TREE_ID,
        trees: dict[bytes, bytes] | None = None,
        skipped: list[str] | None = None,
        hashed: int = 0,
    ) -> None:
        self.tree = tree
        self.trees: dict[bytes, bytes] = {} if trees is None else trees  # id -> body
        self.skipped: list[str] = [] if skipped is None else skipped
        self.hashed = hashed  # files whose contents had to be read


def _read_file(path: str, size: int) -> bytes:
    """The whole file (``size``: what stat saw; a file that changed is still read whole)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return read_all(fd, size)
    finally:
        os.close(fd)


def _hash_big(path: str) -> tuple[bytes, int]:
    """Id of a large file read in pieces (status never holds a big file in memory)."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        h = hashlib.sha256(_BLOB_HDR % size)
        n = 0
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            n += len(b)
            h.update(b)
    if n != size:  # changed while we read it: hash what we saw
        data = _read_file(path, n)
        h = hashlib.sha256(_BLOB_HDR % len(data))
        h.update(data)
    return h.digest(), n


class Scanner:
    """One pass over the working tree. With collect=True, yields the objects the store lacks."""

    def __init__(
        self,
        repo: Repository,
        index: Index,
        collect: bool = False,
        progress: ProgressSink | None = None,
    ) -> None:
        self.repo = repo
        self.root = repo.root
        self.index = index
        self.new: dict[str, Entry] = {}
        self.collect = collect
        self.progress = progress  # shown while a large file is hashed
        self.store = repo.store
        self.result = ScanResult()
        self._yielded: set[bytes] = set()
        #: With a file-system monitor (muse.core.fsmonitor): the directories that may have
        #: changed, with their ancestors, and the tree id each directory had at the last scan.
        #: A directory outside ``dirty`` whose cached tree the store has is carried over
        #: unread, index entries and all.
        self.dirty: set[str] | None = None
        self.cached_trees: dict[str, bytes] = {}
        self.dir_trees: dict[str, bytes] = {}  # what this scan found, for the next one
        self._by_dir: dict[str, list[str]] | None = None

    @property
    def old(self) -> dict[str, Entry]:
        """The index's entries (decoded only when a directory is actually scanned)."""
        return self.index.entries

    def use_monitor(self, changed: set[str], trees: dict[str, bytes]) -> None:
        dirty: set[str] = set()
        for d in changed:
            while d not in dirty:
                dirty.add(d)
                if not d:
                    break
                d = d.rpartition("/")[0]
        self.dirty = dirty
        self.cached_trees = trees

    def _carry(self, rel: str) -> bytes | None:
        """The cached tree id of an unchanged directory (its entries copied), or None."""
        if self.dirty is None or rel in self.dirty:
            return None
        tid = self.cached_trees.get(rel)
        if tid is None or not self.store.has(tid):
            return None
        if self._by_dir is None:
            by_dir: dict[str, list[str]] = {}
            for p in self.old:
                by_dir.setdefault(p.rpartition("/")[0], []).append(p)
            self._by_dir = by_dir
        old, new, prefix = self.old, self.new, rel + "/"
        for d, paths in self._by_dir.items():
            if d == rel or d.startswith(prefix):
                for p in paths:
                    new[p] = old[p]
        for d, t in self.cached_trees.items():
            if d == rel or d.startswith(prefix):
                self.dir_trees[d] = t
        return tid

    def run(self) -> Iterator[tuple[int, bytes]]:
        """Generator: objects to store (only when collecting); fills self.result."""
        if self.dirty is not None and "" not in self.dirty:
            carried = self.cached_trees.get("")
            if carried is not None and self.store.has(carried):  # nothing changed at all
                self.result.tree = carried
                self.dir_trees = dict(self.cached_trees)
                return  # the index stays as it is (not even decoded)
        oid = yield from self._walk()
        self.result.tree = oid if oid is not None else EMPTY_TREE_ID
        if oid is None:
            body = encode_tree([], checked=True)
            self.result.trees[EMPTY_TREE_ID] = body
            if self.collect and not self.store.has(EMPTY_TREE_ID):
                yield TREE, body
        if self.new.keys() != self.old.keys() or self.result.hashed:
            self.index.dirty = True
        self.index.entries = self.new

    def scan_all(self) -> ScanResult:
        for _ in self.run():
            pass
        return self.result

    def _walk(self) -> Generator[tuple[int, bytes], None, bytes | None]:
        """Run one _scan per directory on an explicit stack instead of recursing, so a tree
        thousands of levels deep cannot exhaust Python's recursion limit: a _scan yields a
        _Descend for a subdirectory and is resumed with the subdirectory's tree id."""
        stack = [self._scan(self.root, "", [])]
        value: bytes | None = None
        while True:
            try:
                item = stack[-1].send(value)
            except StopIteration as done:
                stack.pop()
                if not stack:
                    return done.value  # type: ignore[no-any-return]
                value = done.value
                continue
            value = None
            if isinstance(item, _Descend):
                stack.append(self._scan(*item))
            else:
                yield item

    def _scan(
        self, path: str, rel: str, rules: list[_ignore.Rule]
    ) -> Generator[tuple[int, bytes] | _Descend, bytes | None, bytes | None]:
        try:
            with os.scandir(path) as it:
                items = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if any(e.name == IGNORE_FILE for e in items):
            from muse.core import ignore as _ignore

            try:
                with open(os.path.join(path, IGNORE_FILE), encoding="utf-8") as f:
                    rules = rules + _ignore.parse(f.read(), rel)
            except (OSError, UnicodeDecodeError):
                pass
        entries: list[tuple[str, int, bytes]] = []
        old = self.old
        new = self.new
        racy = self.index.racy_ns
        prefix = rel + "/" if rel else ""
        collect = self.collect
        S_ISREG = _stat.S_ISREG
        for e in items:
            name = e.name
            if name[0] in ".mM" or not name.isascii():
                if is_muse_dir_name(name):
                    if rel or name != ".muse":
                        self.result.skipped.append(prefix + name)
                    continue  # .muse (in any case) is never tracked
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    self.result.skipped.append(prefix + name)
                    continue
            relpath = prefix + name
            if relpath not in old and name_problem(name) is not None:
                # A new name that checkout (and the hub) would refuse: a Windows device
                # name, a backslash, a drive letter, over 255 bytes. Skipped and reported,
                # like .muse, so that no commit holds what cannot be pushed or checked out.
                self.result.skipped.append(relpath)
                continue
            if e.is_dir(follow_symlinks=False):
                if rules and _is_ignored(rules, relpath, name, True):
                    continue
                sub = self._carry(relpath) if self.dirty is not None else None
                if sub is None:
                    sub = yield _Descend(e.path, relpath, rules)
                if sub is not None:
                    entries.append((name, MODE_TREE, sub))
                continue
            if rules and _is_ignored(rules, relpath, name, False):
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            m = st.st_mode
            if S_ISREG(m):
                mode = MODE_EXEC if m & 0o100 else MODE_FILE
                if st.st_size >= CHUNKED_MIN:
                    mode = file_mode(bool(m & 0o100), st.st_size)
            elif _stat.S_ISLNK(m):
                mode = MODE_LINK
            else:
                continue
            c = old.get(relpath)
            if (
                c is not None
                and c[1] & MODE_MASK == mode
                and stat_unchanged(c, st, racy)
                and (not collect or c[1] & STORED)
            ):
                new[relpath] = c
                entries.append((name, mode, c[0]))
                continue
            self.result.hashed += 1
            flags = mode
            try:
                if mode == MODE_LINK:
                    data = os.fsencode(os.readlink(e.path))
                    oid = _blob_id(data)
                elif mode in CHUNKED_MODES:
                    mode, oid = yield from self._chunked(e.path, mode, relpath, st.st_size)
                    flags = mode
                    data = b""
                elif st.st_size > _BIG and not collect:
                    oid, _ = _hash_big(e.path)
                    data = b""
                else:
                    data = _read_file(e.path, st.st_size)
                    oid = _blob_id(data)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if collect:
                fresh = oid not in self._yielded and mode not in CHUNKED_MODES
                if fresh and not self.store.has(oid):
                    self._yielded.add(oid)
                    yield BLOB, data
                flags |= STORED
            elif c is not None and c[0] == oid and c[1] & STORED:
                flags |= STORED
            new[relpath] = make_entry(oid, flags, st)
            entries.append((name, mode, oid))
        if not entries:
            return None
        body = encode_tree(entries, checked=True)
        h = hashlib.sha256(b"tree %d\0" % len(body))
        h.update(body)
        tid = h.digest()
        self.result.trees[tid] = body
        self.dir_trees[rel] = tid
        if collect and tid not in self._yielded and not self.store.has(tid):
            self._yielded.add(tid)
            yield TREE, body
        return tid

    def _chunked(
        self, path: str, mode: int, rel: str = "", size: int = 0
    ) -> Generator[tuple[int, bytes], None, tuple[int, bytes]]:
        """(mode, id) of a large file, cut into chunks as it is read (never held whole).

        When collecting, yields the chunks and the chunk list the store lacks, so they stream
        into one pack. A file that shrank below CHUNKED_MIN meanwhile becomes a plain blob.
        """
        pending: list[tuple[int, bytes]] = []
        collect = self.collect
        has = self.store.has
        yielded = self._yielded

        def keep(oid: bytes, data: memoryview) -> None:
            if oid not in yielded and not has(oid):
                yielded.add(oid)
                pending.append((BLOB, bytes(data)))

        progress = self.progress
        if progress is not None:
            progress.start(f"Hashing {rel}", 0, size)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        try:
            ids: list[bytes] = []
            lengths: list[int] = []
            for oid, piece in _chunking.cut(fd):
                ids.append(oid)
                lengths.append(len(piece))
                if progress is not None:
                    progress.add_bytes(len(piece))
                if collect:
                    keep(oid, piece)
                    if pending:
                        yield from pending
                        pending.clear()
        finally:
            os.close(fd)
            if progress is not None:
                progress.finish_line()
        if sum(lengths) < CHUNKED_MIN:  # it shrank while we read it
            data = _read_file(path, sum(lengths))
            oid = _blob_id(data)
            if collect and oid not in yielded and not has(oid):
                yielded.add(oid)
                yield BLOB, data
            return (MODE_EXEC if mode in EXEC_MODES else MODE_FILE), oid
        body = encode_chunks(ids, lengths)
        oid = object_id(CHUNKS, body)
        if collect and oid not in yielded and not has(oid):
            yielded.add(oid)
            yield CHUNKS, body
        return mode, oid


class _Descend(NamedTuple):
    """What a _scan yields to have a subdirectory scanned (Scanner._walk)."""

    path: str
    rel: str
    rules: list[_ignore.Rule]


def _is_ignored(rules: list[_ignore.Rule], relpath: str, name: str, is_dir: bool) -> bool:
    from muse.core import ignore as _ignore  # (already imported: rules came from it)

    return _ignore.is_ignored(rules, relpath, name, is_dir)


def _blob_id(data: bytes) -> bytes:
    h = hashlib.sha256(_BLOB_HDR % len(data))
    h.update(data)
    return h.digest()


# --------------------------------------------------------------------------- storing
def store_objects(store: ObjectStore, objects: Iterable[tuple[int, bytes]]) -> int:
    """Store objects loose when few and small, else stream them into one pack; returns how
    many. A large file's chunks always go into a pack (one file and one fsync, not one per
    64 KiB chunk)."""
    it = iter(objects)
    first: list[tuple[int, bytes]] = []
    size = 0
    for item in it:
        first.append(item)
        size += len(item[1])
        if len(first) > PACK_THRESHOLD or size > PACK_BYTES:
            break
    if len(first) <= PACK_THRESHOLD and size <= PACK_BYTES:
        n = 0
        for kind, body in chain(first, it):
            store.put(kind, body)
            n += 1
        return n
    counter = [0]

    def counted() -> Iterator[tuple[int, bytes]]:
        for item in chain(first, it):
            counter[0] += 1
            yield item

    store.write_pack(counted())
    return counter[0]


# ----------------------------------------------------------------------- scan / snapshot
def _monitored(repo: Repository, sc: Scanner) -> str | None:
    """With ``core.fsmonitor`` on: let the scan skip what the monitor saw unchanged; returns
    the token to remember with the index afterwards (None: monitor off or not answering)."""
    try:
        on = repo.effective_config().get("core", {}).get("fsmonitor")
    except Exception:  # noqa: BLE001 - a config error is reported by the commands that read it
        return None
    if on is not True and str(on).lower() != "true":
        return None
    from muse.core import fsmonitor

    token, trees = fsmonitor.load_state(repo.muse_dir, sc.index.checksum)
    new_token, changed = fsmonitor.changed_dirs(repo.root, token)
    if new_token is not None and changed is not None and token is not None:
        sc.use_monitor(changed, trees)
    return new_token


def _remember(repo: Repository, sc: Scanner, token: str | None) -> None:
    """Keep what the scan found for the next one, if the index on disk agrees with it."""
    if token is None or sc.index.dirty or not sc.index.checksum:
        return
    from muse.core import fsmonitor

    fsmonitor.save_state(repo.muse_dir, token, sc.index.checksum, sc.dir_trees)


def scan(repo: Repository, index: Index | None = None) -> tuple[ScanResult, Index]:
    """Scan the working tree (hashing only what the stat cache cannot vouch for)."""
    idx = index or load_index(repo.muse_dir)
    sc = Scanner(repo, idx)
    _monitored(repo, sc)
    return sc.scan_all(), idx


def snapshot(
    repo: Repository, index: Index | None = None, progress: ProgressSink | None = None
) -> tuple[ScanResult, Index]:
    """Scan and store every new blob and tree; returns the result (its .tree is complete)."""
    idx = index or load_index(repo.muse_dir)
    sc = Scanner(repo, idx, collect=True, progress=progress)
    _monitored(repo, sc)
    store_objects(repo.store, sc.run())
    return sc.result, idx


class Status(Record):
    _fields = ("head", "tree", "changes", "skipped")

    def __init__(
        self, head: bytes | None, tree: bytes, changes: list[Change], skipped: list[str]
    ) -> None:
        self.head = head
        self.tree = tree
        self.changes = changes
        self.skipped = skipped

    @property
    def clean(self) -> bool:
        return not self.changes


def status(repo: Repository) -> Status:
    """Compare the working tree with HEAD's tree; refreshes the stat cache if it went stale."""
    idx = load_index(repo.muse_dir)
    sc = Scanner(repo, idx)
    token = _monitored(repo, sc)
    result = sc.scan_all()
    head = repo.head_commit()
    head_tree = repo.read_commit(head).tree if head is not None else EMPTY_TREE_ID
    changes: list[Change] = []
    if result.tree != head_tree:
        changes = list(diff_trees(tree_reader(repo.store, result.trees), head_tree, result.tree))
    if idx.dirty:
        if idx.base is None:
            idx.base = head_tree
        _save_quietly(idx)
    _remember(repo, sc, token)
    return Status(head, result.tree, changes, result.skipped)


def _save_quietly(idx: Index) -> None:
    try:
        idx.save()
    except OSError:
        pass  # a read-only repository still answers status


def status_letter(old: tuple[int, bytes] | None, new: tuple[int, bytes] | None) -> str:
    if old is None:
        return "A"
    if new is None:
        return "D"
    if (old[0] == MODE_LINK) != (new[0] == MODE_LINK):
        return "T"
    return "M"
