"""The closure record: which sets of commits a pack is exactly the history of.

``pack-<checksum>.closure`` beside ``pack-<checksum>.pack`` (docs/format.md "Closure
record")::

    "muse closure 1\n"
    one line per set of commits: their ids in lowercase hex, sorted, space-separated, "\n"

A line says: the pack holds every object reachable from those commits and nothing else. It
is written only after that was proven (``verify.closure_pack``) and read to skip the proof,
as git keeps reachability bitmaps beside a pack. A pack's name is the checksum of all its
bytes, so a record stays true for as long as a pack of that name exists; the record goes
with its pack (repack).
"""

from __future__ import annotations

import os

from muse.core.lockfile import write_atomic

MAGIC = b"muse closure 1\n"
#: Records are a few lines; anything larger is not one of ours and says nothing.
MAX_BYTES = 1 << 20


def record_path(pack_path: str) -> str:
    return os.path.splitext(pack_path)[0] + ".closure"


def line(commits: list[bytes]) -> bytes:
    """The record line of a set of commits."""
    return b" ".join(sorted({c.hex().encode() for c in commits}))


def _lines(pack_path: str) -> list[bytes]:
    """The record's lines; none when it is missing, unreadable or not in the format."""
    try:
        with open(record_path(pack_path), "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError:
        return []
    if not data.startswith(MAGIC) or len(data) > MAX_BYTES:
        return []
    return [ln for ln in data[len(MAGIC) :].split(b"\n") if ln]


def sets(pack_path: str) -> list[list[bytes]]:
    """Every set of commits the record names (``muse fsck`` checks each); lines that are not
    ids are skipped."""
    out = []
    for ln in _lines(pack_path):
        try:
            ids = [bytes.fromhex(h.decode("ascii")) for h in ln.split(b" ")]
        except ValueError:
            continue
        if all(len(i) == 32 for i in ids):
            out.append(ids)
    return out


def recorded(pack_path: str, commits: list[bytes]) -> bool:
    """Whether the record says the pack is exactly the history of ``commits``."""
    return bool(commits) and line(commits) in _lines(pack_path)


def remember(pack_path: str, commits: list[bytes]) -> None:
    """Add the history of ``commits`` (proven by the caller) to the pack's record, which is
    replaced whole, atomically. Best effort: a record that cannot be written (a read-only
    repository) only means the next push proves it again."""
    lines = _lines(pack_path)
    new = line(commits)
    if new in lines:
        return
    try:
        write_atomic(
            record_path(pack_path), MAGIC + b"".join(ln + b"\n" for ln in [*lines, new]), mode=0o444
        )
    except OSError:
        pass


def remove(pack_path: str) -> None:
    """The record of a pack that is being removed."""
    try:
        os.unlink(record_path(pack_path))
    except FileNotFoundError:
        pass
