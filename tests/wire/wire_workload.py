"""The histories of docs/benchmarks.md ("Definition"), built from muse.core.objects alone.

Shared by the wire tests (small tiers) and tests/wire/bench_pack.py (XL).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from muse.core import objects as O

BASE_TIME = 1704067200
DIRS = 50


@dataclass
class History:
    """Every object of a tier's history in creation order, and the commit ids in order."""

    objects: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # kind, oid, body
    commits: list[bytes] = field(default_factory=list)

    def get_map(self) -> dict[bytes, tuple[int, bytes]]:
        return {oid: (kind, body) for kind, oid, body in self.objects}


def build(tier: str, commits: int, files_per_commit: int) -> History:
    """Commit k adds files part{k%50}/c{k:05d}-{i}.bin of 4,096 seeded random bytes."""
    sig = [
        O.Signature("Bench Author", "bench@example.invalid", BASE_TIME + k) for k in range(commits)
    ]
    h = History()
    parts: dict[str, dict[str, tuple[int, bytes]]] = {}
    part_ids: dict[str, bytes] = {}
    parent: tuple[bytes, ...] = ()
    for k in range(commits):
        d = f"part{k % DIRS:02d}"
        entries = parts.setdefault(d, {})
        for i in range(files_per_commit):
            body = b"\x00" + random.Random(f"{tier}:{k}:{i}").randbytes(4095)
            oid = O.object_id(O.BLOB, body)
            h.objects.append((O.BLOB, oid, body))
            entries[f"c{k:05d}-{i}.bin"] = (O.MODE_FILE, oid)
        tbody = O.encode_tree([(n, m, i) for n, (m, i) in entries.items()])
        tid = O.object_id(O.TREE, tbody)
        h.objects.append((O.TREE, tid, tbody))
        part_ids[d] = tid
        rbody = O.encode_tree([(n, O.MODE_TREE, i) for n, i in part_ids.items()])
        rid = O.object_id(O.TREE, rbody)
        h.objects.append((O.TREE, rid, rbody))
        cbody = O.Commit(rid, parent, sig[k], sig[k], f"commit {k}").encode()
        cid = O.object_id(O.COMMIT, cbody)
        h.objects.append((O.COMMIT, cid, cbody))
        h.commits.append(cid)
        parent = (cid,)
    return h
