"""The one read interface every object source offers (loose store, pack, pack set, hub reader)."""

from __future__ import annotations

from typing import Protocol


class ObjectReader(Protocol):
    """Anything objects can be read from: ObjectStore, PackFile, PackSet, a dict wrapper."""

    def get(self, oid: bytes) -> tuple[int, bytes] | None: ...

    def has(self, oid: bytes) -> bool: ...
