"""graph.merge_base: the quick fast-forward walks give the same answers as the full walk."""

from __future__ import annotations

import random

from muse.core import graph
from muse.core.objects import COMMIT, EMPTY_TREE_ID, Commit, Signature, object_id

SIG = Signature("A", "a@example.org", 1704067200, 0)


class Store(dict):
    def get(self, oid):  # type: ignore[override]
        return super().get(oid)

    def commit(self, *parents: bytes, n: list[int] = [0]) -> bytes:  # noqa: B006
        n[0] += 1
        body = Commit(EMPTY_TREE_ID, tuple(parents), SIG, SIG, f"c{n[0]}").encode()
        oid = object_id(COMMIT, body)
        self[oid] = (COMMIT, body)
        return oid


def _brute(s: Store, a: bytes, b: bytes) -> set[bytes]:
    """Every best common ancestor (none of them an ancestor of another)."""
    common = graph.ancestors(s, a) & graph.ancestors(s, b)
    return {c for c in common if not any(c != o and c in graph.ancestors(s, o) for o in common)}


def test_fast_forward_up_to_date_and_diverged():
    s = Store()
    root = s.commit()
    chain = [root]
    for _ in range(600):  # longer than the quick walk
        chain.append(s.commit(chain[-1]))
    tip = chain[-1]
    ahead = s.commit(tip)
    assert graph.merge_base(s, tip, ahead) == tip  # fast-forward
    assert graph.merge_base(s, ahead, tip) == tip  # up to date
    assert graph.merge_base(s, chain[0], tip) == chain[0]  # far behind: found by the full walk
    side = s.commit(chain[300])
    assert graph.merge_base(s, side, ahead) == chain[300]


def test_random_histories_agree_with_brute_force():
    rng = random.Random(7)
    for _ in range(20):
        s = Store()
        commits = [s.commit()]
        for _ in range(60):
            k = rng.random()
            p1 = rng.choice(commits[-10:])
            if k < 0.2 and len(commits) > 2:
                commits.append(s.commit(p1, rng.choice(commits)))
            else:
                commits.append(s.commit(p1))
        for _ in range(20):
            a, b = rng.choice(commits), rng.choice(commits)
            got = graph.merge_base(s, a, b)
            assert got in _brute(s, a, b)


class SkewedStore(Store):
    """Commits whose committer clocks sometimes run behind or ahead."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng
        self.time = 1704067200

    def commit(self, *parents: bytes, n: list[int] = [0]) -> bytes:  # noqa: B006
        self.time += self.rng.choice([60, 60, 60, -3600, 7200])
        sig = Signature("A", "a@example.org", self.time, 0)
        body = Commit(EMPTY_TREE_ID, tuple(parents), sig, sig, f"c{len(self)}").encode()
        oid = object_id(COMMIT, body)
        self[oid] = (COMMIT, body)
        return oid


def test_random_histories_with_skewed_clocks_agree_with_brute_force():
    """The paint-down walk is ordered by committer time: wrong clocks may lengthen the walk
    but never change the answer."""
    rng = random.Random(11)
    for _ in range(30):
        s = SkewedStore(rng)
        commits = [s.commit()]
        for _ in range(400):
            p1 = rng.choice(commits[-12:])
            if rng.random() < 0.25 and len(commits) > 2:
                commits.append(s.commit(p1, rng.choice(commits)))
            else:
                commits.append(s.commit(p1))
        for _ in range(15):
            a, b = rng.choice(commits), rng.choice(commits)
            assert graph.merge_base(s, a, b) in _brute(s, a, b)
