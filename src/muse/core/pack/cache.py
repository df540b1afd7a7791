"""Decompressed zstd blocks, kept in an LRU bounded in bytes.

The owner of the readers decides the scope: a client command has one cache for its pack
set, the hub one per request, so concurrent requests cannot evict each other's work or
hold more than their own bound.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict

#: Default bound: enough for every tree of an XL history in any access order.
BLOCK_CACHE_BYTES = 96 << 20

#: Each PackFile's key prefix in a cache it may share with other packs.
next_owner = itertools.count(1).__next__


class BlockCache:
    """An LRU of decompressed blocks keyed by (owner, block offset), bounded in bytes
    (thread-safe)."""

    def __init__(self, budget: int = BLOCK_CACHE_BYTES) -> None:
        self.budget = budget
        self.size = 0
        self._d: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        #: Keys ever put, and how many puts were of a key evicted before: a block decompressed
        #: again, the sign that a reader's order fights the packs' (see pack.gather).
        self._seen: set[tuple[int, int]] = set()
        self.refills = 0

    def get(self, key: tuple[int, int]) -> bytes | None:
        with self._lock:
            data = self._d.get(key)
            if data is not None:
                self._d.move_to_end(key)
            return data

    def put(self, key: tuple[int, int], data: bytes) -> None:
        with self._lock:
            if key in self._d:
                return
            if key in self._seen:
                self.refills += 1
            else:
                self._seen.add(key)
            self._d[key] = data
            self.size += len(data)
            while self.size > self.budget and len(self._d) > 1:
                _, old = self._d.popitem(last=False)
                self.size -= len(old)

    def drop(self, owner: int) -> None:
        with self._lock:
            for key in [k for k in self._d if k[0] == owner]:
                self.size -= len(self._d.pop(key))
            self._seen = {k for k in self._seen if k[0] != owner}
