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

    def bytes_in(self, first: int, end: int) -> int:
        """How many content bytes the files of commits first..end-1 hold."""
        return self.files_in(first, end) * FILE_SIZE

    def generate(self) -> tuple[CommitSpec, ...]:
        per = self.files_per_commit
        return tuple(
            CommitSpec(k, tuple((path_of(k, i), content_of(self, k, i)) for i in range(per)))
            for k in range(self.commits)
        )


MiB = 1 << 20


@dataclass(frozen=True)
class MediaTier(Tier):
    """A music project (docs/benchmarks.md, "The media tier"): commit 0 adds STEMS stems of
    STEM_BYTES incompressible bytes and SMALL project files of FILE_SIZE; each later commit k
    rewrites one REGION of two stems and adds one small file."""

    STEMS = 40
    STEM_BYTES = 50 * MiB
    SMALL = 200
    REGION = MiB

    def files_in(self, first: int, end: int) -> int:
        first, end = max(first, 0), min(end, self.commits)
        n = max(0, end - max(first, 1)) * 3
        return n + (self.STEMS + self.SMALL if first == 0 < end else 0)

    def bytes_in(self, first: int, end: int) -> int:
        first, end = max(first, 0), min(end, self.commits)
        n = max(0, end - max(first, 1)) * (2 * self.STEM_BYTES + FILE_SIZE)
        if first == 0 < end:
            n += self.STEMS * self.STEM_BYTES + self.SMALL * FILE_SIZE
        return n

    @staticmethod
    def stem_path(s: int) -> str:
        return f"stems/stem-{s:02d}.wav"

    def edit_of(self, k: int) -> list[tuple[int, int]]:
        """(stem, byte offset of the rewritten region) for commit k >= 1."""
        stems = ((2 * k - 2) % self.STEMS, (2 * k - 1) % self.STEMS)
        slots = self.STEM_BYTES // self.REGION - 1
        return [(s, ((k * 7919 + s) % slots) * self.REGION) for s in stems]

    def generate(self) -> tuple[CommitSpec, ...]:
        stems = [
            bytearray(random.Random(f"MEDIA:stem:{s}").randbytes(self.STEM_BYTES))
            for s in range(self.STEMS)
        ]
        small = tuple((f"project/p{i:03d}.txt", content_of(self, 0, i)) for i in range(self.SMALL))
        first = tuple((self.stem_path(s), bytes(b)) for s, b in enumerate(stems))
        out = [CommitSpec(0, first + small)]
        for k in range(1, self.commits):
            files = []
            for s, off in self.edit_of(k):
                stems[s][off : off + self.REGION] = random.Random(f"MEDIA:{k}:{s}").randbytes(
                    self.REGION
                )
                files.append((self.stem_path(s), bytes(stems[s])))
            files.append((f"project/n{k:02d}.txt", content_of(self, k, 0)))
            out.append(CommitSpec(k, tuple(files)))
        return tuple(out)


TIERS: dict[str, Tier] = {
    t.name.lower(): t
    for t in (
        Tier("XS", 1, 1),
        Tier("S", 10, 50),
        Tier("M", 100, 500),
        Tier("L", 1000, 5000),
        Tier("XL", 5000, 25000),
        Tier("XXL", 20000, 100000),
        MediaTier("MEDIA", 11, 270),
    )
}
ORDER = ["xs", "s", "m", "l", "xl"]  # what --size all runs (the ticket's tiers, with gates)
EXTRA = ["xxl", "media"]  # run only when named


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
    """Generated once per tier and kept (XL is ~100 MB, media ~3 GB): runs seed many fresh
    repositories."""
    return tier.generate()


def commits(tier: Tier, first: int = 0, end: int | None = None) -> Iterator[CommitSpec]:
    """Commits first..end-1 of the tier's history, in order."""
    yield from _all_commits(tier)[first : tier.commits if end is None else end]


def expected_tree(tier: Tier, end: int | None = None) -> dict[str, bytes]:
    """path -> content of the working tree after commits 0..end-1."""
    out: dict[str, bytes] = {}
    for c in commits(tier, 0, end):
        out.update(c.files)
    return out
