"""Blobs a checkout is about to read, kept from the pack that brought them.

A clone or a pull decodes every block of the pack it receives (each id re-hashed), then
checks out the tip, which would read the tip's files from that pack once more. A pack's
blocks hold up to 16 MiB of object versions grouped by path, so each file read inflates the
whole block that holds it again: the flask clone's checkout inflated its 11 blocks (178 MB)
a second time to write 236 files. :class:`WarmBlobs` watches the objects as the receive
decodes them and keeps the bodies of the tips' commits, trees and small files, which a pack carries
after the commits and trees that name them (``layout_for_pack`` lays a history out so, and
``PackWriter`` writes a block of trees before the blobs added after them);
:meth:`muse.core.store.ObjectStore.warm` then answers those reads from memory.

What it keeps is only ever a verified object (the receive hands it over after its id was
re-hashed), so a kept body is exactly what the store would read; one it missed (a tree that
came before its parent, a blob in an earlier pack, the budget spent) is read from the pack as
before. Large files (chunk lists) are not kept: their chunks sit in raw blocks, read without
inflating anything.
"""

from __future__ import annotations

from collections.abc import Iterable

from muse.core.objects import (
    BLOB,
    COMMIT,
    MODE_EXEC,
    MODE_FILE,
    MODE_LINK,
    MODE_TREE,
    TREE,
    commit_refs,
    tree_refs,
)

#: At most this many bytes of bodies are kept (a checkout's trees and small files).
BUDGET = 64 << 20

_PLAIN = frozenset((MODE_FILE, MODE_EXEC, MODE_LINK))  # the entries that name blobs


class WarmBlobs:
    """Fed each (kind, id, verified body) of a receive in pack order; keeps the tips' commits,
    trees and blobs."""

    def __init__(self, tips: Iterable[bytes], budget: int = BUDGET) -> None:
        self._commits = set(tips)
        self._trees: set[bytes] = set()
        self._blobs: set[bytes] = set()
        self._left = budget
        #: id -> (kind, body) of what was kept
        self.kept: dict[bytes, tuple[int, bytes]] = {}

    def see(self, kind: int, oid: bytes, body: bytes | memoryview) -> None:
        if kind == BLOB:
            if oid in self._blobs:
                self._blobs.discard(oid)
                self._keep(kind, oid, body)
        elif kind == TREE:
            if oid in self._trees:
                self._trees.discard(oid)
                self._keep(kind, oid, body)  # the checkout validates every tree first
                modes, ids = tree_refs(body)
                for i, m in enumerate(modes):
                    if m in _PLAIN:
                        self._blobs.add(ids[32 * i : 32 * i + 32])
                    elif m == MODE_TREE:
                        self._trees.add(ids[32 * i : 32 * i + 32])
        elif kind == COMMIT and oid in self._commits:
            self._commits.discard(oid)
            self._trees.add(commit_refs(body)[0])
            self._keep(kind, oid, body)  # the checkout starts by reading it

    def _keep(self, kind: int, oid: bytes, body: bytes | memoryview) -> None:
        if len(body) <= self._left:
            self._left -= len(body)
            self.kept[oid] = (kind, bytes(body))
