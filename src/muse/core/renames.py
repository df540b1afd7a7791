"""Rename detection over a tree diff: pair a deleted path with an added one, git's way.

A diff lists a moved file as one deletion and one addition; diff, show and status print the
pair as one rename instead. Exact renames (the same object id, any kind of file) pair first,
by id, at no cost; then text files whose contents are at least ``threshold`` percent alike
(git's default 50 %, ``-M``). Likeness is git's measure in spirit: the bytes of the lines the
two files share (as a multiset) over the larger file's size. Content is read only for the
inexact pass and only when there are at most ``limit`` candidates on each side (git's
``diff.renameLimit`` guards the same quadratic step).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from muse.core.objects import CHUNKED_MODES, MODE_LINK
from muse.core.treediff import Change

__all__ = ["Rename", "detect_renames", "similarity"]

#: (old path, new path, old (mode, id), new (mode, id), similarity in percent).
Rename = tuple[str, str, tuple[int, bytes], tuple[int, bytes], int]


def similarity(a: bytes, b: bytes) -> int:
    """How alike two contents are, in percent: shared line bytes over the larger size."""
    return _score(a, Counter(a.splitlines(True)), b, Counter(b.splitlines(True)))


def _score(a: bytes, la: Counter[bytes], b: bytes, lb: Counter[bytes]) -> int:
    if a == b:
        return 100
    big = max(len(a), len(b))
    if len(la) > len(lb):
        la, lb = lb, la
    shared = sum(len(line) * min(n, lb[line]) for line, n in la.items() if line in lb)
    return shared * 100 // big


def detect_renames(
    changes: list[Change],
    read: Callable[[str, tuple[int, bytes], bool], bytes],
    threshold: int = 50,
    limit: int = 400,
) -> tuple[list[Change], list[Rename]]:
    """Split changes into (what is left, renames). ``read(path, entry, new_side)`` gives a
    file's content for the similarity pass; binaries and large (chunked) files pair only
    when exactly equal."""
    deleted = {c[0]: c[1] for c in changes if c[1] is not None and c[2] is None}
    added = {c[0]: c[2] for c in changes if c[2] is not None and c[1] is None}
    if not deleted or not added:  # nothing to pair (a clean status): no diff machinery
        return list(changes), []
    from muse.core.textdiff import is_binary

    renames: list[Rename] = []
    by_id: dict[tuple[bool, bytes], list[str]] = {}
    for path, entry in sorted(deleted.items()):
        by_id.setdefault((entry[0] == MODE_LINK, entry[1]), []).append(path)
    for path, entry in sorted(added.items()):
        sources = by_id.get((entry[0] == MODE_LINK, entry[1]))
        if sources:
            old = sources.pop(0)
            renames.append((old, path, deleted.pop(old), added.pop(path), 100))
    if threshold <= 100 and deleted and added and len(deleted) <= limit and len(added) <= limit:

        def text(path: str, entry: tuple[int, bytes], new: bool) -> bytes | None:
            if entry[0] in CHUNKED_MODES or entry[0] == MODE_LINK:
                return None
            data = read(path, entry, new)
            return None if is_binary(data) else data

        def lines(items: dict[str, tuple[int, bytes]], new: bool) -> dict[str, Any]:
            out = {}
            for p, e in items.items():
                data = text(p, e, new)
                if data is not None:
                    out[p] = (data, Counter(data.splitlines(True)))
            return out

        olds, news = lines(deleted, False), lines(added, True)
        scored = []
        for np_, (nd, nc) in news.items():
            for op, (od, oc) in olds.items():
                small, big = sorted((len(nd), len(od)))
                if small * 100 < threshold * big:  # too unequal in size to be alike enough
                    continue
                s = _score(od, oc, nd, nc)
                if s >= threshold:
                    scored.append((-s, np_, op))
        scored.sort()
        for neg, np_, op in scored:
            if np_ in added and op in deleted:
                renames.append((op, np_, deleted.pop(op), added.pop(np_), -neg))
    paired_old = {r[0] for r in renames}
    paired_new = {r[1] for r in renames}
    rest = [
        c
        for c in changes
        if not (c[2] is None and c[0] in paired_old) and not (c[1] is None and c[0] in paired_new)
    ]
    return rest, renames
