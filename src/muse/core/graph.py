"""The commit graph: parents, history walks, ancestry and merge bases.

Every question about how commits relate goes through here (log, merge, push, the hub's
fast-forward check, branch -d). Walks read through any object reader and parse only what
they need (parent lines), so the hub's pack set and a local store share them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from muse.core.objects import COMMIT, Commit, commit_info, commit_refs
from muse.core.pack.codec import PackError
from muse.core.reader import ObjectReader
from muse.core.repo import Repository
from muse.errors import MuseError


def walk(repo: Repository, tips: list[bytes]) -> Iterator[tuple[bytes, Commit]]:
    """Every commit reachable from tips once, by committer time, newest first (like git log)."""
    seen: set[bytes] = set()
    heap: list[tuple[int, int, bytes, Commit]] = []
    n = 0
    for t in tips:
        if t not in seen:
            seen.add(t)
            c = repo.read_commit(t)
            heapq.heappush(heap, (-c.committer.time, n, t, c))
            n += 1
    while heap:
        _, _, oid, c = heapq.heappop(heap)
        yield oid, c
        for p in c.parents:
            if p not in seen:
                seen.add(p)
                pc = repo.read_commit(p)
                n += 1
                heapq.heappush(heap, (-pc.committer.time, n, p, pc))


def is_ancestor(reader: ObjectReader, ancestor: bytes, descendant: bytes) -> bool:
    """Whether ancestor is reachable from descendant through parents (a commit is its own
    ancestor). Takes any object reader (a local store, the hub's pack set), so the client's
    push, the hub's fast-forward check and ``muse branch -d`` share one walk; it parses only
    the parent lines and stops as soon as the ancestor is met."""
    if ancestor == descendant:
        return True
    seen = {descendant}
    todo = [descendant]
    while todo:
        found = reader.get(todo.pop())
        if found is None or found[0] != COMMIT:
            continue
        for parent in commit_refs(found[1])[1]:
            if parent == ancestor:
                return True
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return False


class MissingCommit(MuseError):
    """A commit the walk needs is not in the repository (a broken or shallow history)."""


def parents(reader: ObjectReader, oid: bytes) -> list[bytes]:
    """The parents of a commit that must exist (MissingCommit otherwise)."""
    found = reader.get(oid)
    if found is None or found[0] != COMMIT:
        raise MissingCommit(f"commit {oid.hex()[:12]} is missing")
    return commit_refs(found[1])[1]


def ancestors(reader: ObjectReader, tip: bytes) -> set[bytes]:
    """Every commit reachable from tip, tip included."""
    seen = {tip}
    todo = [tip]
    while todo:
        for p in parents(reader, todo.pop()):
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


#: Commits merge_base walks looking for a fast-forward before it walks whole histories.
_QUICK_WALK = 256


def _reaches(reader: ObjectReader, start: bytes, target: bytes, limit: int) -> bool:
    """Whether target is reached from start within ``limit`` commits (False: not, or not
    within the limit)."""
    seen = {start}
    todo = [start]
    while todo and len(seen) <= limit:
        found = reader.get(todo.pop(0))
        if found is None or found[0] != COMMIT:
            continue
        for p in commit_refs(found[1])[1]:
            if p == target:
                return True
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return False


def merge_base(reader: ObjectReader, a: bytes, b: bytes) -> bytes | None:
    """A best common ancestor of a and b (one that is not an ancestor of another candidate)."""
    if a == b:
        return a
    # The common cases first, each a short walk: a fast-forward (pull, merge of a branch
    # that only moved ahead) or already up to date.
    for x, y in ((a, b), (b, a)):
        if _reaches(reader, y, x, _QUICK_WALK):
            return x
    candidates = _paint_down(reader, a, b)
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    best = [
        c for c in candidates if not any(c != o and is_ancestor(reader, c, o) for o in candidates)
    ]
    return best[0] if best else candidates[0]


_A, _B, _STALE = 1, 2, 4


def _paint_down(reader: ObjectReader, a: bytes, b: bytes) -> list[bytes]:
    """The common ancestors of a and b that no other one found descends from (git's
    paint_down_to_common): both histories walked together, newest commit first, each commit
    painted with the sides it is reached from; a commit painted by both is a candidate and
    its ancestors are stale; the walk ends when only stale commits are queued. So a pull of
    the last 10 % of flask's history walks those commits and their side branches, not all
    5,531 (0.2 s before). Committer times order the walk; a skewed clock can only make it
    walk further, and candidates that turn out to be ancestors of others are dropped."""
    flags: dict[bytes, int] = {}
    heap: list[tuple[int, int, bytes]] = []
    queued: set[bytes] = set()
    live: set[bytes] = set()  # queued commits that are not stale: the walk goes on for them
    counter = 0

    def paint(oid: bytes, f: int) -> None:
        nonlocal counter
        old = flags.get(oid, 0)
        new = old | f
        if new == old:
            return
        flags[oid] = new
        if oid not in queued:
            found = reader.get(oid)
            if found is None or found[0] != COMMIT:
                raise MissingCommit(f"commit {oid.hex()[:12]} is missing")
            counter += 1
            heapq.heappush(heap, (-commit_info(found[1])[2], counter, oid))
            queued.add(oid)
        if new & _STALE:
            live.discard(oid)
        else:
            live.add(oid)

    paint(a, _A)
    paint(b, _B)
    results: list[bytes] = []
    while live:
        _, _, oid = heapq.heappop(heap)
        queued.discard(oid)
        live.discard(oid)
        f = flags[oid]
        if f & (_A | _B) == _A | _B and not f & _STALE:
            if oid not in results:
                results.append(oid)
            f |= _STALE  # its parents are stale; the candidate itself only if reached again
        for p in parents(reader, oid):
            paint(p, f)
    return [r for r in results if not flags[r] & _STALE]


#: Commits walked from the haves' side after the wants are settled (skewed clocks).
_SLOP = 5


def new_commits(
    commit_of: Callable[[bytes], tuple[bytes, list[bytes], int] | None],
    wants: list[bytes],
    haves: list[bytes],
) -> tuple[list[bytes], dict[bytes, tuple[bytes, list[bytes], int]]]:
    """Commits reachable from wants and not from haves (newest first), and what was read.

    ``commit_of(oid)`` gives (tree, parents, committer time), None for an unknown commit.
    Like git's revision walk, wants and haves are walked together by committer time and the
    walk stops once every queued commit is reachable from a have: a one-commit fetch reads a
    handful of commits whatever the history. A missing want raises PackError
    ("missing_objects"); an unknown have is ignored.
    """
    info: dict[bytes, tuple[bytes, list[bytes], int]] = {}
    unint: set[bytes] = set()  # reachable from a have
    queued: set[bytes] = set()
    done: set[bytes] = set()
    heap: list[tuple[int, int, bytes]] = []
    seq = 0
    n_int = 0  # queued entries not (yet) known to be reachable from a have

    def push(oid: bytes, interesting: bool) -> None:
        nonlocal seq, n_int
        data = info.get(oid)
        if data is None:
            data = commit_of(oid)
            if data is None:
                if interesting:
                    raise PackError("missing_objects", f"commit {oid.hex()} is missing")
                return
            info[oid] = data
        seq += 1
        heapq.heappush(heap, (-data[2], seq, oid))
        queued.add(oid)
        if interesting:
            n_int += 1

    def mark(oid: bytes) -> None:
        """Mark oid and (if already walked) its ancestry as reachable from a have."""
        nonlocal n_int
        stack = [oid]
        while stack:
            c = stack.pop()
            if c in unint:
                continue
            if c in queued:
                unint.add(c)
                n_int -= 1
            elif c in done:
                unint.add(c)
                stack.extend(info[c][1])
            else:
                unint.add(c)
                push(c, False)

    for h in haves:
        mark(h)  # an unknown have is simply not queued
    for c in wants:
        if c not in unint and c not in queued:
            push(c, True)
    new: list[bytes] = []
    slop = _SLOP
    while heap and (n_int > 0 or slop > 0):
        if n_int == 0:
            # Like git, walk a few more commits from the haves' side after everything queued
            # is known to be theirs: with skewed clocks that reveals late have-side commits.
            slop -= 1
        _, _, oid = heapq.heappop(heap)
        if oid not in queued:
            continue
        queued.discard(oid)
        done.add(oid)
        parents = info[oid][1]
        if oid in unint:
            for p in parents:
                mark(p)
            continue
        n_int -= 1
        new.append(oid)
        for p in parents:
            if p not in queued and p not in done and p not in unint:
                push(p, True)
    # Clock skew can reveal late that a walked commit was reachable from a have.
    return [c for c in new if c not in unint], info


def ahead_behind(reader: ObjectReader, a: bytes, b: bytes) -> tuple[int, int]:
    """(commits reachable from a but not b, from b but not a): git's "ahead 2, behind 1".

    Walks both tips together by committer time, newest first, painting each commit with the
    side(s) it is reachable from, and stops once every queued commit is reachable from both:
    two tips a few commits apart cost a few commits, whatever the history behind them. A
    commit found late to be reachable from the other side (clocks skewed against the
    parent order) is recounted and its walked ancestry repainted, and a few more commits are
    walked after the stop for the same reason, as :func:`new_commits` does.
    """
    if a == b:
        return 0, 0
    both = 3
    info: dict[bytes, tuple[list[bytes], int]] = {}
    flags: dict[bytes, int] = {}
    done: set[bytes] = set()
    queued: set[bytes] = set()
    heap: list[tuple[int, int, bytes]] = []
    counts = [0, 0, 0]  # by flag: [unused, from a only, from b only]
    seq = 0
    pending = 0  # queued commits not yet reachable from both sides

    def read(oid: bytes) -> tuple[list[bytes], int]:
        got = info.get(oid)
        if got is None:
            found = reader.get(oid)
            if found is None or found[0] != COMMIT:
                raise MissingCommit(f"commit {oid.hex()[:12]} is missing")
            _, ps, when = commit_info(bytes(found[1]))
            got = info[oid] = (ps, when)
        return got

    def paint(oid: bytes, flag: int) -> None:
        nonlocal seq, pending
        stack = [oid]
        while stack:
            c = stack.pop()
            old = flags.get(c, 0)
            new = old | flag
            if new == old:
                continue
            flags[c] = new
            if c in done:  # walked already: move its count, repaint what it reached
                counts[old] -= 1
                if new != both:
                    counts[new] += 1
                stack.extend(info[c][0])
            elif c in queued:
                if new == both:
                    pending -= 1
            else:
                seq += 1
                heapq.heappush(heap, (-read(c)[1], seq, c))
                queued.add(c)
                if new != both:
                    pending += 1

    paint(a, 1)
    paint(b, 2)
    slop = _SLOP
    while heap and (pending > 0 or slop > 0):
        if pending == 0:
            slop -= 1
        _, _, oid = heapq.heappop(heap)
        queued.discard(oid)
        done.add(oid)
        flag = flags[oid]
        if flag != both:
            pending -= 1
            counts[flag] += 1
        for p in info[oid][0]:
            paint(p, flag)
    return counts[1], counts[2]
