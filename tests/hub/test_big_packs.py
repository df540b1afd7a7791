"""Big stored packs (the segments of a large push, 64 MiB and more) are neither merged by the
hub's repack nor rebuilt into one bundle by a clone: they are handed out as they lie."""

from __future__ import annotations

from musehub.protocol import repostore
from musehub.protocol.records import PackInfo
from musehub.protocol.serve import MAX_DIRECT_BUNDLES, MAX_DIRECT_PACKS, Server

MiB = 1 << 20


class _Pack:
    def __init__(self, ids: list[bytes]) -> None:
        self._ids = ids

    def ids(self) -> list[bytes]:
        return self._ids


class _Reader:
    def __init__(self, packs: list[_Pack]) -> None:
        self.packs = packs  # newest first, as the hub's reader lists them


def _repo(sizes: list[int]) -> tuple[list[PackInfo], _Reader, list[tuple[int, bytes]]]:
    """Stored packs of the given sizes (oldest first), each of two objects of its own."""
    infos, packs, objects = [], [], []
    for n, size in enumerate(sizes):
        ids = [bytes([n % 256, n // 256, k]) * 8 + bytes(8) for k in range(2)]
        infos.append(PackInfo(f"pack-{n}", 2, 2, size))
        packs.append(_Pack(ids))
        objects += [(1, oid) for oid in ids]
    return infos, _Reader(list(reversed(packs))), objects


def test_many_big_packs_are_handed_out_as_they_are() -> None:
    infos, reader, objects = _repo([1 * MiB] + [66 * MiB] * 16 + [2 * MiB])
    chosen = Server._direct_packs(reader, infos, objects)  # type: ignore[arg-type]
    assert chosen is not None and [i.name for i in chosen] == [i.name for i in infos]


def test_many_small_packs_are_not() -> None:
    infos, reader, objects = _repo([1 * MiB] * (MAX_DIRECT_PACKS + 1) + [66 * MiB] * 3)
    assert Server._direct_packs(reader, infos, objects) is None  # type: ignore[arg-type]
    infos, reader, objects = _repo([1 * MiB] * MAX_DIRECT_PACKS + [66 * MiB] * 3)
    assert Server._direct_packs(reader, infos, objects) is not None  # type: ignore[arg-type]


def test_never_more_bundles_than_the_cap() -> None:
    infos, reader, objects = _repo([66 * MiB] * (MAX_DIRECT_BUNDLES + 1))
    assert Server._direct_packs(reader, infos, objects) is None  # type: ignore[arg-type]


def test_repack_leaves_big_packs_alone() -> None:
    infos = [PackInfo(f"big-{n}", 2, 2, 70 * MiB) for n in range(20)]
    infos += [PackInfo(f"small-{n}", 2, 2, MiB) for n in range(3)]
    merged: list[list[str]] = []

    class _Store(repostore.RepoStore):
        def __init__(self) -> None:
            import threading

            self._lock = threading.Lock()
            self._repacking: set[int] = set()

        def pack_infos(self, repo_id: int) -> list[PackInfo]:
            return infos

        def _repack(self, repo_id: int, user_id: int, chosen: list[PackInfo]) -> None:
            merged.append([i.name for i in chosen])

    store = _Store()
    store.maybe_repack(1, 1)
    assert merged == []  # 23 packs, but only 3 small ones: nothing to merge
    infos += [PackInfo(f"small-{n}", 2, 2, MiB) for n in range(3, 20)]
    store.maybe_repack(1, 1)
    assert len(merged) == 1 and all(name.startswith("small-") for name in merged[0])
