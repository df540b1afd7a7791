"""Several packs behind one reader (newest first): a given list, or every pack of a directory."""

from __future__ import annotations

import os
from collections.abc import Iterator

from muse.core.pack import index
from muse.core.pack.cache import BlockCache
from muse.core.pack.codec import PackError
from muse.core.pack.file import PackFile

#: With more packs than this, a reader that has made :data:`MERGE_AFTER` lookups builds one
#: {id: pack} map of them all, so each lookup costs one dict probe instead of one probe per
#: pack: large files arrive in segments of 64 MiB that are never merged (a 10 GiB recording
#: is 160 packs), and checking its 160,000 chunks asked every pack about each one.
MERGE_PACKS = 4
MERGE_AFTER = 4096


class PackList:
    """Given packs (newest first) behind one read interface; the hub hands the packs its
    database lists for a repository, with the request's block cache."""

    def __init__(self, packs: list[PackFile], cache: BlockCache | None = None) -> None:
        self.packs = packs
        self.cache = cache if cache is not None else BlockCache()

    @property
    def packs(self) -> list[PackFile]:
        return self._packs

    @packs.setter
    def packs(self, packs: list[PackFile]) -> None:
        self._packs = packs
        self._merged: dict[bytes, PackFile] | None = None
        self._lookups = 0

    def pack_of(self, oid: bytes) -> PackFile | None:
        """The first pack (newest first) holding ``oid``."""
        merged = self._merged
        if merged is not None:
            return merged.get(oid)
        packs = self._packs
        if len(packs) > MERGE_PACKS:
            self._lookups += 1
            if self._lookups > MERGE_AFTER:
                merged = {}
                for pf in reversed(packs):  # the newest last: its entry wins, as in a scan
                    merged.update(dict.fromkeys(pf.ids(), pf))
                self._merged = merged
                return merged.get(oid)
        for pf in packs:
            if pf.has(oid):
                return pf
        return None

    def get(self, oid: bytes) -> tuple[int, bytes] | None:
        pf = self.pack_of(oid)
        return None if pf is None else pf.get(oid)

    def has(self, oid: bytes) -> bool:
        return self.pack_of(oid) is not None

    @property
    def block_cache(self) -> BlockCache:
        return self.cache

    def locate(self, oid: bytes) -> tuple[PackFile, int] | None:
        """Where :meth:`get` would read the object, if from a zstd block (pack.gather)."""
        pf = self.pack_of(oid)
        return None if pf is None else pf.locate(oid)

    def kind(self, oid: bytes) -> int | None:
        pf = self.pack_of(oid)
        return None if pf is None else pf.kind(oid)

    def size(self, oid: bytes) -> int | None:
        pf = self.pack_of(oid)
        return None if pf is None else pf.size(oid)

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
