"""What to send: the objects reachable from the wants and not from the haves.

Both sides use this: the client to build a push, the hub to answer a fetch. The cost is
proportional to what changed, not to the size of the repository:

* Commits are walked newest first from wants and haves together (like git's revision walk,
  ordered by committer time); the walk stops as soon as every commit still queued is
  reachable from a have. A one-commit fetch reads a handful of commits, whatever the history.
* Each new commit's tree is diffed against its parents' trees, descending only into entries
  whose id changed, so unchanged subtrees (most of a big tree) are never read. An object
  present in a parent's tree is either sent with that parent or already on the other side;
  a directory that is new at its path is compared with the enclosing directory's parents,
  so a moved directory costs one tree. The result is never less than what the other side
  needs and, in rare merge and clock-skew cases (as with git), slightly more.
* Trees are visited level by level and path by path, which is both the order packs store
  them in (consecutive versions of a directory side by side, where zstd makes them nearly
  free) and the order that reads each stored block once.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from muse.core.graph import new_commits
from muse.core.idsection import common_ends, has_id
from muse.core.objects import (
    BLOB,
    CHUNKED_MODES,
    CHUNKS,
    COMMIT,
    MODE_TREE,
    TAG,
    TREE,
    ObjectFormatError,
    chunks_refs,
    commit_info,
    tag_refs,
    tree_refs,
)
from muse.core.pack.codec import PackError
from muse.core.reader import ObjectReader

__all__ = ["blob_stats", "objects_to_send"]

_TREE_CACHE = 256


class _Tree:
    """A tree parsed just enough to diff it: modes, the id section, names on demand."""

    __slots__ = ("body", "n", "modes", "ids", "_names")

    def __init__(self, body: bytes) -> None:
        self.modes, self.ids = tree_refs(body)
        self.body = body
        self.n = len(self.modes)
        self._names: list[bytes] | None = None

    def id(self, i: int) -> bytes:
        return self.ids[32 * i : 32 * i + 32]

    @property
    def names(self) -> list[bytes]:
        if self._names is None:
            names = self.body[4 + 33 * self.n :].split(b"\0")
            if len(names) != self.n + 1:
                raise ObjectFormatError("tree names section malformed")
            self._names = names[: self.n]
        return self._names

    def subtree(self, name: bytes) -> bytes | None:
        """The id of the subtree called name, if this tree has one."""
        return self.entry(name, (MODE_TREE,))

    def entry(self, name: bytes, modes: Iterable[int]) -> bytes | None:
        """The id of the entry called name if its mode is one of ``modes``."""
        names = self.names
        i = bisect.bisect_left(names, name)
        if i < self.n and names[i] == name and self.modes[i] in modes:
            return self.id(i)
        return None

    def changed(self, parents: list[_Tree], context: list[_Tree]) -> list[int]:
        """Positions of entries whose id is in none of the parents.

        With no parent (a directory that is new at this path), ``context`` holds the parents
        of the enclosing directory: an entry found there was moved or copied, not created,
        and needs no sending (``git mv lib vendor/lib`` costs one tree, not the library).
        """
        if not parents:
            if not context:
                return list(range(self.n))
            return [i for i in range(self.n) if not any(has_id(t.ids, self.id(i)) for t in context)]
        first = parents[0]
        p, s = common_ends(self.ids, first.ids, self.modes, first.modes)
        window = range(p, self.n - s)
        if not window:
            return []
        cand = [(i, self.id(i)) for i in window]
        if len(cand) > 64:
            known: set[bytes] = set()
            for t in parents:
                known.update(t.ids[j : j + 32] for j in range(0, len(t.ids), 32))
            return [i for i, oid in cand if oid not in known]
        return [i for i, oid in cand if not any(has_id(t.ids, oid) for t in parents)]


class _Walker:
    def __init__(self, reader: ObjectReader) -> None:
        self.reader = reader
        self._trees: dict[bytes, _Tree] = {}

    def tree(self, oid: bytes) -> _Tree:
        t = self._trees.get(oid)
        if t is not None:
            return t
        found = self.reader.get(oid)
        if found is None:
            raise PackError("missing_objects", f"tree {oid.hex()} is missing")
        if found[0] != TREE:
            raise PackError("bad_pack", f"object {oid.hex()} is not a tree")
        try:
            t = _Tree(found[1])
        except ObjectFormatError as e:
            raise PackError("bad_pack", f"tree {oid.hex()}: {e}") from None
        if len(self._trees) >= _TREE_CACHE:
            self._trees.clear()
        self._trees[oid] = t
        return t

    def chunks(self, oid: bytes) -> bytes | None:
        """The ids section of the chunk list oid (None if this side lacks it)."""
        found = self.reader.get(oid)
        if found is None or found[0] != CHUNKS:
            return None
        try:
            return chunks_refs(found[1])
        except ObjectFormatError as e:
            raise PackError("bad_pack", f"chunk list {oid.hex()}: {e}") from None

    def chunked_entries(self, root: bytes) -> set[bytes]:
        """Every chunk list named anywhere in the tree ``root`` (a walk without recursion)."""
        out: set[bytes] = set()
        stack, seen = [root], set()
        while stack:
            tid = stack.pop()
            if tid in seen:
                continue
            seen.add(tid)
            found = self.reader.get(tid)
            if found is None or found[0] != TREE:
                continue
            t = _Tree(found[1])
            for i, m in enumerate(t.modes):
                if m == MODE_TREE:
                    stack.append(t.id(i))
                elif m in CHUNKED_MODES:
                    out.add(t.id(i))
        return out

    def commit(self, oid: bytes) -> tuple[bytes, list[bytes], int] | None:
        found = self.reader.get(oid)
        if found is None or found[0] != COMMIT:
            return None
        try:
            return commit_info(found[1])
        except ObjectFormatError as e:
            raise PackError("bad_pack", f"commit {oid.hex()}: {e}") from None


def objects_to_send(
    reader: ObjectReader,
    wants: list[bytes],
    haves: list[bytes],
    stats: dict[str, int] | None = None,
) -> list[tuple[int, bytes]]:
    """(kind, oid) of every object reachable from wants and not from haves.

    Unknown haves are ignored; a want (or anything reachable from a new commit) that the
    reader lacks raises PackError("missing_objects"). Wants may also be trees, blobs or
    annotated tags (sent with what they name, first in the list); haves that are tags count
    as the commits they name.
    Order: commits (newest first), trees grouped by path, chunk lists, blobs: what packs
    want. A large file's chunks are sent only when the other side has them in none of: the
    file's versions at the same path in the parents, and every chunk list of the haves' tips
    (so an edit costs its changed chunks, and a copy or a move costs nothing). ``stats``, if
    given, gets ``chunks_sent`` and ``chunks_deduplicated`` (chunks of the new chunk lists
    left out because the other side has them, or because the push sends them once).
    """
    w = _Walker(reader)
    commit_wants: list[bytes] = []
    # path -> [(tree id, ids of the trees at this path in the parents, context)]
    tasks: dict[bytes, list[tuple[bytes, tuple[bytes, ...], tuple[bytes, ...]]]] = {b"": []}
    blobs: list[bytes] = []
    sent_blobs: set[bytes] = set()
    tags: list[bytes] = []
    have_set = set(haves)
    haves = [_peel(reader, h) for h in haves]
    pending_wants = list(wants)
    while pending_wants:
        oid = pending_wants.pop(0)
        found = reader.get(oid)
        if found is None:
            raise PackError("missing_objects", f"object {oid.hex()} is missing")
        if found[0] == TAG:
            if oid in have_set or oid in tags:
                continue
            tags.append(oid)
            try:
                pending_wants.append(tag_refs(found[1])[0])
            except ObjectFormatError as e:
                raise PackError("bad_pack", f"tag {oid.hex()}: {e}") from None
        elif found[0] == COMMIT:
            commit_wants.append(oid)
        elif found[0] == TREE:
            tasks[b""].append((oid, (), ()))
        elif oid not in sent_blobs:
            sent_blobs.add(oid)
            blobs.append(oid)
    new, info = new_commits(w.commit, commit_wants, haves)
    roots = tasks[b""]
    for c in new:
        tree, parents, _ = info[c]
        roots.append((tree, tuple(info[p][0] for p in parents if p in info), ()))

    # A tree is sent once, but diffed once per distinct (tree, parents, context): the same
    # tree met again under other parents (a revert: A -> B -> A) may hold what those
    # parents lack, so skipping it by id alone would leave objects out.
    # With no haves the other side has nothing: everything reachable goes, so each tree is
    # walked once, whole, with no diffing against parents (a first push, a clone).
    fresh = not haves
    chunk_lists: list[tuple[bytes, tuple[bytes, ...]]] = []  # (new list, same-path bases)
    sent_lists: set[bytes] = set()
    sent_trees: set[bytes] = set()
    diffed: set[tuple[bytes, tuple[bytes, ...], tuple[bytes, ...]]] = set()
    trees: list[bytes] = []
    pending = tasks
    while pending:
        nxt: dict[bytes, list[tuple[bytes, tuple[bytes, ...], tuple[bytes, ...]]]] = {}
        for path in sorted(pending):
            for task in pending[path]:
                tid, ptids, ctx = task
                if fresh:
                    if tid in sent_trees:
                        continue
                elif tid in ptids or tid in ctx or task in diffed:
                    continue
                else:
                    diffed.add(task)
                if tid not in sent_trees:
                    sent_trees.add(tid)
                    trees.append(tid)
                t = w.tree(tid)
                ps = [] if fresh else [w.tree(p) for p in ptids]
                modes = t.modes
                positions = range(t.n) if fresh else t.changed(ps, [w.tree(c) for c in ctx])
                for i in positions:
                    oid = t.id(i)
                    if modes[i] == MODE_TREE:
                        name = t.names[i]
                        subs = tuple(s for p in ps if (s := p.subtree(name)) is not None)
                        sub_ctx = () if subs or fresh else (ptids or ctx)
                        nxt.setdefault(path + b"/" + name, []).append((oid, subs, sub_ctx))
                    elif modes[i] in CHUNKED_MODES:
                        if oid not in sent_lists:
                            sent_lists.add(oid)
                            name = t.names[i]
                            bases = tuple(
                                b for p in ps if (b := p.entry(name, CHUNKED_MODES)) is not None
                            )
                            chunk_lists.append((oid, bases))
                    elif oid not in sent_blobs:
                        sent_blobs.add(oid)
                        blobs.append(oid)
        pending = nxt
    out: list[tuple[int, bytes]] = [(TAG, t) for t in tags]
    out.extend((COMMIT, c) for c in new)
    out.extend((TREE, t) for t in trees)
    if chunk_lists:
        listed = [0]
        chunks = _new_chunks(w, chunk_lists, haves, sent_blobs, listed)
        blobs.extend(chunks)
        out.extend((CHUNKS, c) for c, _ in chunk_lists)
        if stats is not None:
            stats["chunks_sent"] = len(chunks)
            stats["chunks_deduplicated"] = listed[0] - len(chunks)
    out.extend((BLOB, b) for b in blobs)
    return out


def _peel(reader: ObjectReader, oid: bytes) -> bytes:
    """What a chain of annotated tags ends at (oid itself when it is no tag)."""
    for _ in range(16):  # a chain of tags is short; a cycle cannot exist (ids are hashes)
        found = reader.get(oid)
        if found is None or found[0] != TAG:
            return oid
        try:
            oid = tag_refs(found[1])[0]
        except ObjectFormatError:
            return oid
    return oid


def _new_chunks(
    w: _Walker,
    chunk_lists: list[tuple[bytes, tuple[bytes, ...]]],
    haves: list[bytes],
    sent: set[bytes],
    listed: list[int],
) -> list[bytes]:
    """The chunks of new chunk lists that the other side lacks, in file order (``listed[0]``
    counts every chunk the lists name)."""
    known: set[bytes] | None = None  # chunks of every chunk list of the haves' tips
    out: list[bytes] = []
    for cid, bases in chunk_lists:
        ids = w.chunks(cid)
        if ids is None:
            raise PackError("missing_objects", f"chunk list {cid.hex()} is missing")
        base: set[bytes] = set()
        for b in bases:
            section = w.chunks(b)
            if section is not None:
                base.update(section[i : i + 32] for i in range(0, len(section), 32))
        listed[0] += len(ids) // 32
        for i in range(0, len(ids), 32):
            oid = ids[i : i + 32]
            if oid in sent or oid in base:
                continue
            if known is None:
                known = _tip_chunks(w, haves)
            if oid in known:
                continue
            sent.add(oid)
            out.append(oid)
    return out


def _tip_chunks(w: _Walker, haves: list[bytes]) -> set[bytes]:
    """Every chunk of every large file in the trees of the haves (the other side's tips)."""
    lists: set[bytes] = set()
    for h in haves:
        info = w.commit(h)
        if info is not None:
            lists |= w.chunked_entries(info[0])
    out: set[bytes] = set()
    for cid in lists:
        section = w.chunks(cid)
        if section is not None:
            out.update(section[i : i + 32] for i in range(0, len(section), 32))
    return out


def blob_stats(reader: ObjectReader, objects: Iterable[tuple[int, bytes]]) -> tuple[int, int]:
    """(number of blobs, their total bytes) of a send list: what picks stream vs presign.

    Uses the reader's ``size(oid)`` when it has one (pack indexes know sizes without reading).
    """
    size_of = getattr(reader, "size", None)
    count = 0
    total = 0
    for kind, oid in objects:
        if kind != BLOB:
            continue
        count += 1
        n = size_of(oid) if size_of is not None else None
        if n is None:
            found = reader.get(oid)
            n = len(found[1]) if found is not None else 0
        total += n
    return count, total
