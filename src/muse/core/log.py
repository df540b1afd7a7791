"""History walks: commits reachable from some tips, newest first, and ancestry tests."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from muse.core.objects import COMMIT, Commit, commit_refs
from muse.core.reader import ObjectReader
from muse.core.repo import Repository


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
