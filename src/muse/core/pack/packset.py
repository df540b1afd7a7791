"""Several packs behind one reader (newest first): a given list, or every pack of a directory."""

from __future__ import annotations

import os
from collections.abc import Iterator

from muse.core.pack import index
from muse.core.pack.cache import BlockCache
from muse.core.pack.codec import PackError
from muse.core.pack.file import PackFile


class PackList:
    """Given packs (newest first) behind one read interface; the hub hands the packs its
    database lists for a repository, with the request's block cache."""

    def __init__(self, packs: list[PackFile], cache: BlockCache | None = None) -> None:
        self.packs = packs
        self.cache = cache if cache is not None else BlockCache()

    def get(self, oid: bytes) -> tuple[int, bytes] | None:
        for pf in self.packs:
            found = pf.get(oid)
            if found is not None:
                return found
        return None

    def has(self, oid: bytes) -> bool:
        return any(pf.has(oid) for pf in self.packs)

    @property
    def block_cache(self) -> BlockCache:
        return self.cache

    def locate(self, oid: bytes) -> tuple[PackFile, int] | None:
        """Where :meth:`get` would read the object, if from a zstd block (pack.gather)."""
        for pf in self.packs:
            found = pf.locate(oid)
            if found is not None:
                return found
        return None

    def kind(self, oid: bytes) -> int | None:
        for pf in self.packs:
            k = pf.kind(oid)
            if k is not None:
                return k
        return None

    def size(self, oid: bytes) -> int | None:
        for pf in self.packs:
            n = pf.size(oid)
            if n is not None:
                return n
        return None

    def ids(self) -> Iterator[bytes]:
        seen: set[bytes] = set()
        for pf in self.packs:
            for oid in pf.ids():
                if oid not in seen:
                    seen.add(oid)
                    yield oid

    def __len__(self) -> int:
        return len(self.packs)


class PackSet(PackList):
    """Every ``*.pack`` (with its index) in one directory."""

    def __init__(self, directory: str, cache: BlockCache | None = None) -> None:
        super().__init__([], cache)
        self.directory = directory
        self._by_name: dict[str, PackFile] = {}
        self.refresh()

    def refresh(self) -> None:
        """Pick up packs added since (newest first, so recent objects are found fastest)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            names = []
        found: list[tuple[float, str]] = []
        for n in names:
            if n.endswith(".pack") and not n.startswith("."):
                p = os.path.join(self.directory, n)
                if os.path.exists(index.idx_path(p)):
                    try:
                        found.append((os.stat(p).st_mtime, n))
                    except FileNotFoundError:
                        continue
        found.sort(reverse=True)
        by_name: dict[str, PackFile] = {}
        for _, n in found:
            pf = self._by_name.get(n)
            if pf is None:
                try:
                    # The index's own hash is fsck's to check (PackFile.verify): re-hashing
                    # every index on every command made each command cost the repository.
                    pf = PackFile(os.path.join(self.directory, n), self.cache, verify_index=False)
                except (OSError, PackError):
                    continue
            by_name[n] = pf
        self._by_name = by_name
        self.packs = list(by_name.values())
