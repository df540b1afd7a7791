"""History walks: commits reachable from some tips, newest first, and ancestry tests."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from muse.core.objects import Commit
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


def is_ancestor(repo: Repository, ancestor: bytes, descendant: bytes) -> bool:
    """Whether ancestor is reachable from descendant (a commit is its own ancestor)."""
    return any(oid == ancestor for oid, _ in walk(repo, [descendant]))
