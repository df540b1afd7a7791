"""Tree diff and tree walks: the one place that compares or lists snapshots by path.

Status, commit, checkout, merge, show and log all ask the same questions of trees: which
files differ between two of them, and which files one holds. A tree is read through a
*getter* (tree id -> {name: (mode, id)}), so a caller can answer from trees it already
decoded (a scan, a validated checkout) before the store. Both walks are iterative, so a
tree thousands of levels deep cannot exhaust Python's recursion limit, and both descend
only where ids differ, so their cost follows the change, not the tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from muse.core.objects import EMPTY_TREE_ID, MODE_TREE, TREE, decode_tree

__all__ = [
    "Change",
    "TreeGetter",
    "TreeMap",
    "changed_paths",
    "diff_trees",
    "tree_reader",
    "walk_tree",
]

#: A decoded tree: name -> (mode, id).
TreeMap = dict[str, tuple[int, bytes]]
TreeGetter = Callable[[bytes | None], TreeMap]
#: (path, old (mode, id) or None, new (mode, id) or None).
Change = tuple[str, tuple[int, bytes] | None, tuple[int, bytes] | None]


class _Store(Protocol):
    """What tree_reader needs of an object store."""

    def get_kind(self, oid: bytes, kind: int) -> bytes: ...


def tree_reader(store: _Store, extra: dict[bytes, bytes] | None = None) -> TreeGetter:
    """A caching getter over a store; ``extra`` holds tree bodies not stored yet (a scan)."""
    cache: dict[bytes, TreeMap] = {}

    def get(oid: bytes | None) -> TreeMap:
        if oid is None or oid == EMPTY_TREE_ID:
            return {}
        t = cache.get(oid)
        if t is None:
            body = extra.get(oid) if extra else None
            if body is None:
                body = store.get_kind(oid, TREE)
            t = cache[oid] = {e.name: (e.mode, e.id) for e in decode_tree(body)}
        return t

    return get


def diff_trees(get: TreeGetter, a: bytes | None, b: bytes | None) -> Iterator[Change]:
    """Every file that differs from tree a to tree b (None: the empty tree), sorted by path.

    Where a file becomes a directory, the file's deletion comes before the directory's
    files; where a directory becomes a file, the directory's files come first. Descends only
    into subtrees whose ids differ.
    """
    # A stack of pending work, in reverse order of output: ("dir", a, b, prefix) expands a
    # pair of trees; ("out", change) yields one change.
    stack: list[tuple[str, object, object, str]] = [("dir", a, b, "")]
    while stack:
        what, x, y, prefix = stack.pop()
        if what == "out":
            yield x  # type: ignore[misc]
            continue
        if x == y:
            continue
        ta, tb = get(x), get(y)  # type: ignore[arg-type]
        todo: list[tuple[str, object, object, str]] = []
        for name in sorted(ta.keys() | tb.keys()):
            ea, eb = ta.get(name), tb.get(name)
            if ea == eb:
                continue
            path = prefix + name
            a_tree = ea is not None and ea[0] == MODE_TREE
            b_tree = eb is not None and eb[0] == MODE_TREE
            if a_tree or b_tree:
                if not a_tree and ea is not None:
                    todo.append(("out", (path, ea, None), None, ""))
                sub_a = ea[1] if a_tree and ea else None
                sub_b = eb[1] if b_tree and eb else None
                todo.append(("dir", sub_a, sub_b, path + "/"))
                if not b_tree and eb is not None:
                    todo.append(("out", (path, None, eb), None, ""))
            else:
                todo.append(("out", (path, ea, eb), None, ""))
        stack.extend(reversed(todo))


def walk_tree(get: TreeGetter, tree: bytes | None) -> Iterator[tuple[str, int, bytes]]:
    """(path, mode, id) of every file under a tree, sorted by path."""
    for path, _old, new in diff_trees(get, None, tree):
        assert new is not None
        yield path, new[0], new[1]


def changed_paths(
    get: TreeGetter, a: bytes | None, b: bytes | None
) -> dict[str, tuple[int, bytes] | None]:
    """Path -> new (mode, id), None where deleted: diff_trees as a map (what a merge applies)."""
    return {path: new for path, _old, new in diff_trees(get, a, b)}
