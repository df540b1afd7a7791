"""core/pack/packset.PackList: past MERGE_PACKS packs and MERGE_AFTER lookups it answers from
one merged map, and answers exactly as a scan of the packs, newest first, would."""

from __future__ import annotations

import random
from pathlib import Path

from muse.core import objects as O
from muse.core.pack import packset
from muse.core.pack.packset import PackList, PackSet
from muse.core.pack.write import write_pack_file


def _packs(tmp_path: Path, n: int) -> tuple[list, list[bytes]]:
    """``n`` packs of 30 blobs each; pack k also holds one blob of pack k-1 (an overlap)."""
    rng = random.Random(5)
    packs, ids = [], []
    prev: bytes | None = None
    for _ in range(n):
        bodies = [rng.randbytes(200) for _i in range(30)]
        if prev is not None:
            bodies.append(prev)
        pf = write_pack_file(str(tmp_path), [(O.BLOB, b) for b in bodies])
        packs.append(pf)
        ids += [O.object_id(O.BLOB, b) for b in bodies]
        prev = bodies[0]
    return list(reversed(packs)), ids  # newest first


def _answers(pl: PackList, probe: list[bytes]) -> list[tuple]:
    out = []
    for oid in probe:
        loc = pl.locate(oid)
        out.append((pl.has(oid), pl.get(oid), pl.kind(oid), pl.size(oid), loc and loc[0].path))
    return out


def test_merged_lookups_answer_as_the_scan(tmp_path: Path, monkeypatch) -> None:
    packs, ids = _packs(tmp_path, packset.MERGE_PACKS + 3)
    probe = ids + [bytes([i]) * 32 for i in range(50)]  # and ids no pack has
    monkeypatch.setattr(packset, "MERGE_AFTER", 10**9)
    scanned = PackList(packs)
    expected = _answers(scanned, probe)
    assert scanned._merged is None
    monkeypatch.setattr(packset, "MERGE_AFTER", 20)
    merged = PackList(packs)
    got = _answers(merged, probe)
    assert merged._merged is not None and len(merged._merged) == len(set(ids))
    assert got == expected


def test_few_packs_never_merge_and_new_packs_reset_the_map(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(packset, "MERGE_AFTER", 5)
    packs, ids = _packs(tmp_path, packset.MERGE_PACKS)
    few = PackList(packs)
    assert all(few.has(oid) for oid in ids) and few._merged is None
    many = tmp_path / "many"
    many.mkdir()
    _, many_ids = _packs(many, packset.MERGE_PACKS + 2)
    pl = PackSet(str(many))
    assert all(pl.has(oid) for oid in many_ids) and pl._merged is not None
    late = write_pack_file(str(many), [(O.BLOB, b"a late arrival")])
    pl.refresh()  # a fetch added a pack: the map is dropped, the new pack found
    assert pl._merged is None
    assert pl.has(O.object_id(O.BLOB, b"a late arrival"))
    late.close()
