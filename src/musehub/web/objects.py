"""What the web pages read of a repository: refs, commits, trees and file bytes, from the packs.

Pages render straight from the stored packs (no checkout). Everything named by an object id
is immutable, so one process keeps, within fixed bounds: the opened packs (by name, which
always denotes the same bytes), their decompressed blocks (one shared LRU), decoded commits
and trees, and the history order below a commit (what paging the log needs). Only the
repository's row, its refs and its pack list are asked of the database on each request.
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar

from muse.core.objects import (
    BLOB,
    CHUNKED_MODES,
    CHUNKS,
    COMMIT,
    MODE_TREE,
    TREE,
    Commit,
    ObjectFormatError,
    TreeEntry,
    commit_refs,
    decode_chunks,
    decode_commit,
    decode_tree,
    tree_refs,
)
from muse.core.pack.cache import BlockCache
from muse.core.pack.file import PackFile
from muse.core.pack.packset import PackList
from muse.core.treediff import TreeMap
from musehub.errors import HubError
from musehub.protocol import dbops
from musehub.protocol.repostore import RepoStore

K = TypeVar("K")
V = TypeVar("V")

#: Bounds of what one process keeps (each an LRU).
OPEN_PACKS = 64
BLOCK_CACHE_BYTES = 64 << 20
DECODED_OBJECTS = 50_000
HISTORIES = 64


class LRU(Generic[K, V]):
    """A thread-safe mapping that keeps its ``limit`` most recently used entries."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._d: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._d.get(key)
            if value is not None:
                self._d.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.limit:
                self._d.popitem(last=False)
        return value


class Objects:
    """The object reader of one hub process for its pages (thread-safe)."""

    def __init__(self, store: RepoStore) -> None:
        self.store = store
        self.blocks = BlockCache(BLOCK_CACHE_BYTES)
        self._packs: LRU[str, PackFile] = LRU(OPEN_PACKS)
        self._decoded: LRU[bytes, object] = LRU(DECODED_OBJECTS)
        self._histories: LRU[bytes, list[bytes]] = LRU(HISTORIES)

    def reader(self, repo_id: int) -> RepoReader:
        """The repository's packs (one database query; the files are opened once)."""
        infos = self.store.pack_infos(repo_id)
        packs = []
        for info in reversed(infos):  # newest first
            pf = self._packs.get(info.name)
            if pf is None:
                pf = self._packs.put(info.name, self.store.pack(repo_id, info.name, self.blocks))
            packs.append(pf)
        return RepoReader(self, PackList(packs, self.blocks))

    def refs(self, repo_id: int) -> dict[str, bytes]:
        with self.store.db.session(readonly=True) as s:
            return dbops.read_refs(s, repo_id)


class RepoReader:
    """One repository's objects, decoded through the process-wide caches."""

    def __init__(self, objects: Objects, packs: PackList) -> None:
        self.objects = objects
        self.packs = packs

    # ------------------------------------------------------------------------- objects
    def get(self, oid: bytes) -> tuple[int, bytes] | None:
        return self.packs.get(oid)

    def has(self, oid: bytes) -> bool:
        return self.packs.has(oid)

    def kind(self, oid: bytes) -> int | None:
        return self.packs.kind(oid)

    def body(self, oid: bytes, kind: int) -> bytes:
        found = self.packs.get(oid)
        if found is None or found[0] != kind:
            raise HubError(404, "not_found", f"object {oid.hex()[:12]} is missing")
        return found[1]

    def commit(self, oid: bytes) -> Commit:
        cached = self.objects._decoded.get(oid)
        if isinstance(cached, Commit):
            return cached
        return self.objects._decoded.put(oid, decode_commit(self.body(oid, COMMIT)))  # type: ignore[return-value]

    def tree(self, oid: bytes) -> list[TreeEntry]:
        cached = self.objects._decoded.get(oid)
        if isinstance(cached, list):
            return cached
        return self.objects._decoded.put(oid, decode_tree(self.body(oid, TREE)))  # type: ignore[return-value]

    def tree_map(self, oid: bytes | None) -> TreeMap:
        """A getter for muse.core.treediff (name -> (mode, id)); None is the empty tree.
        Read straight from the sections of the body: the hub verified every stored tree when
        it was pushed, and a diff reads a hundred of them (decode_tree's checks were half the
        time of a cold compare page)."""
        if oid is None:
            return {}
        key = b"map:" + oid
        cached = self.objects._decoded.get(key)
        if isinstance(cached, dict):
            return cached
        body = self.body(oid, TREE)
        modes, ids = tree_refs(body)
        names = body[4 + 33 * len(modes) :].split(b"\0")
        found = {
            name.decode("utf-8", "replace"): (modes[i], ids[32 * i : 32 * i + 32])
            for i, name in enumerate(names[: len(modes)])
        }
        return self.objects._decoded.put(key, found)  # type: ignore[return-value]

    def file_size(self, mode: int, oid: bytes) -> int:
        """The size of a file's content: a blob's length, or a chunk list's total."""
        if mode in CHUNKED_MODES:
            return int.from_bytes(self.body(oid, CHUNKS)[:8], "big")
        size = self.packs.size(oid)
        return 0 if size is None else size

    # --------------------------------------------------------------------------- paths
    def entry_at(self, tree: bytes, path: str) -> tuple[int, bytes] | None:
        """(mode, id) of ``path`` under ``tree`` ("" is the tree itself), None if absent."""
        mode, oid = MODE_TREE, tree
        for name in [p for p in path.split("/") if p]:
            if mode != MODE_TREE:
                return None
            found = next((e for e in self.tree(oid) if e.name == name), None)
            if found is None:
                return None
            mode, oid = found.mode, found.id
        return mode, oid

    # ----------------------------------------------------------------------- contents
    def chunks(self, mode: int, oid: bytes) -> list[tuple[bytes, int]]:
        """The (blob id, length) pieces of a file's content, in order."""
        if mode not in CHUNKED_MODES:
            return [(oid, self.file_size(mode, oid))]
        _size, ids, lengths = decode_chunks(self.body(oid, CHUNKS))
        return [(ids[32 * i : 32 * i + 32], n) for i, n in enumerate(lengths)]

    def read_range(self, mode: int, oid: bytes, start: int, end: int) -> Iterator[bytes]:
        """The bytes [start, end) of a file, one chunk (at most 256 KiB) at a time."""
        pos = 0
        for cid, length in self.chunks(mode, oid):
            if pos + length > start and pos < end:
                data = self.body(cid, BLOB)
                yield data[max(0, start - pos) : min(length, end - pos)]
            pos += length
            if pos >= end:
                return

    def head(self, mode: int, oid: bytes, n: int) -> bytes:
        """The first ``n`` bytes of a file (all of a small one)."""
        return b"".join(self.read_range(mode, oid, 0, n))

    # ------------------------------------------------------------------------- history
    def meta(self, oid: bytes) -> tuple[bytes, list[bytes], int]:
        """(tree, parents, committer time) of a commit, parsed only that far (history walks
        read thousands of commits)."""
        key = b"meta:" + oid
        cached = self.objects._decoded.get(key)
        if isinstance(cached, tuple):
            return cached
        body = self.body(oid, COMMIT)
        tree, parents = commit_refs(body)
        head = body[: body.find(b"\n\n")]
        committer = head[head.rfind(b"\ncommitter ") :].rsplit(b" ", 2)
        try:
            when = int(committer[-2])
        except (IndexError, ValueError):
            raise ObjectFormatError(f"commit {oid.hex()[:12]} has no committer time") from None
        return self.objects._decoded.put(key, (tree, parents, when))  # type: ignore[return-value]

    def history(self, tip: bytes) -> list[bytes]:
        """Every commit reachable from ``tip``, newest committer time first (git log's order);
        kept per tip, since a commit's history never changes."""
        cached = self.objects._histories.get(tip)
        if cached is not None:
            return cached
        order: list[bytes] = []
        seen = {tip}
        heap = [(-self.meta(tip)[2], 0, tip)]
        n = 0
        while heap:
            _, _, oid = heapq.heappop(heap)
            order.append(oid)
            for p in self.meta(oid)[1]:
                if p not in seen and self.packs.has(p):
                    seen.add(p)
                    n += 1
                    heapq.heappush(heap, (-self.meta(p)[2], n, p))
        return self.objects._histories.put(tip, order)

    def commits_between(self, base: bytes | None, tip: bytes) -> list[bytes]:
        """Commits reachable from ``tip`` and not from ``base``, newest first (``base..tip``):
        git's revision walk (muse.core.graph.new_commits), whose work follows the change."""
        from muse.core.graph import new_commits

        def commit_of(oid: bytes) -> tuple[bytes, list[bytes], int] | None:
            return self.meta(oid) if self.packs.kind(oid) == COMMIT else None

        return new_commits(commit_of, [tip], [base] if base is not None else [])[0]

    def merge_base(self, a: bytes, b: bytes) -> bytes | None:
        """A best common ancestor; ``a`` itself, found by a walk from ``b`` that stops at it,
        in the usual case of comparing a branch with one that grew from it."""
        from muse.core.graph import is_ancestor, merge_base

        return a if is_ancestor(self.packs, a, b) else merge_base(self.packs, a, b)


def commit_id_of(text: str) -> bytes | None:
    """A full 64-hex commit id, or None."""
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return bytes.fromhex(text)
    return None


def resolve_ref(refs: dict[str, bytes], reader: RepoReader, text: str) -> tuple[str, bytes] | None:
    """(display name, commit id) of a branch, a tag or a full commit id, else None."""
    for full in (f"refs/heads/{text}", f"refs/tags/{text}"):
        if full in refs:
            return text, refs[full]
    oid = commit_id_of(text)
    if oid is not None and reader.kind(oid) == COMMIT:
        return text[:12], oid
    return None


def split_ref_path(
    refs: dict[str, bytes], reader: RepoReader, rest: str
) -> tuple[str, bytes, str] | None:
    """Split ``<ref>/<path>`` where the ref may itself hold slashes (``feature/x/dir/f``):
    the longest leading run of segments that names a ref wins, like GitHub's."""
    parts = rest.split("/")
    for i in range(len(parts), 0, -1):
        found = resolve_ref(refs, reader, "/".join(parts[:i]))
        if found is not None:
            return found[0], found[1], "/".join(parts[i:])
    return None


def branches_and_tags(refs: dict[str, bytes]) -> tuple[list[str], list[str]]:
    branches = sorted(n[len("refs/heads/") :] for n in refs if n.startswith("refs/heads/"))
    tags = sorted(n[len("refs/tags/") :] for n in refs if n.startswith("refs/tags/"))
    return branches, tags
