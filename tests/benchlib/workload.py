"""The benchmark's tiers and their deterministic history (docs/benchmarks.md, "Definition").

Content is generated, never stored: every file is a pure function of (tier, commit, file), so
the muse side, the git side and the validators all agree on the bytes without coordination.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

BASE_TIME = 1704067200
AUTHOR_NAME = "Bench Author"
AUTHOR_EMAIL = "bench@example.invalid"
FILE_SIZE = 4096
DIRS = 50


@dataclass(frozen=True)
class Tier:
    """One row of the tier table of docs/benchmarks.md."""

    name: str  # upper case, as used in the content seed
    commits: int
    objects: int  # files (blobs) in the whole history

    @property
    def files_per_commit(self) -> int:
        return self.objects // self.commits

    @property
    def content_bytes(self) -> int:
        return self.objects * FILE_SIZE

    @property
    def half(self) -> int:
        """h = floor(C/2): the pull benchmark's hub holds commits 0..h-1 at clone time."""
        return self.commits // 2

    def files_in(self, first: int, end: int) -> int:
        """How many files commits first..end-1 add."""
        return max(0, end - first) * self.files_per_commit


TIERS: dict[str, Tier] = {
    t.name.lower(): t
    for t in (
        Tier("XS", 1, 1),
        Tier("S", 10, 50),
        Tier("M", 100, 500),
        Tier("L", 1000, 5000),
        Tier("XL", 5000, 25000),
    )
}
ORDER = ["xs", "s", "m", "l", "xl"]


def path_of(k: int, i: int) -> str:
    return f"part{k % DIRS:02d}/c{k:05d}-{i}.bin"


def content_of(tier: Tier, k: int, i: int) -> bytes:
    """Incompressible, unique, reproducible: b"\\x00" + 4,095 seeded random bytes."""
    return b"\x00" + random.Random(f"{tier.name}:{k}:{i}").randbytes(FILE_SIZE - 1)


def message_of(k: int) -> str:
    return f"commit {k}"


def time_of(k: int) -> int:
    return BASE_TIME + k


@dataclass(frozen=True)
class CommitSpec:
    """Commit k: the files it adds, its message and time (author = committer)."""

    k: int
    files: tuple[tuple[str, bytes], ...]

    @property
    def message(self) -> str:
        return message_of(self.k)

    @property
    def time(self) -> int:
        return time_of(self.k)


@lru_cache(maxsize=2)
def _all_commits(tier: Tier) -> tuple[CommitSpec, ...]:
    """Generated once per tier and kept (XL is ~100 MB): runs seed many fresh repositories."""
    per = tier.files_per_commit
    return tuple(
        CommitSpec(k, tuple((path_of(k, i), content_of(tier, k, i)) for i in range(per)))
        for k in range(tier.commits)
    )


def commits(tier: Tier, first: int = 0, end: int | None = None) -> Iterator[CommitSpec]:
    """Commits first..end-1 of the tier's history, in order."""
    yield from _all_commits(tier)[first : tier.commits if end is None else end]


def expected_tree(tier: Tier, end: int | None = None) -> dict[str, bytes]:
    """path -> content of the working tree after commits 0..end-1."""
    out: dict[str, bytes] = {}
    for c in commits(tier, 0, end):
        out.update(c.files)
    return out
