"""The pack index: ids sorted with a fan-out table, and where each object sits.

``pack-<checksum>.idx`` beside ``pack-<checksum>.pack`` (docs/format.md)::

    "MUSEIDX1" | count u32 | pack checksum (32 bytes)
    fanout: 256 x u32, number of ids whose first byte is <= i
    ids: count x 32 bytes, sorted
    entries: count x (block offset u64 | record offset in the block's data u32 |
                      body length u32 | kind u8 | block codec u8), in id order
    SHA-256 of all the preceding bytes
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from typing import Any

from muse.core.pack.codec import PackError

MAGIC = b"MUSEIDX1"
HEAD = struct.Struct(">8sI32s")
ENTRY = struct.Struct(">QIIBB")
ENTRY_LEN = ENTRY.size  # 18
FANOUT = struct.Struct(">256I")


#: An index entry while a pack is written: oid + _ENTRY bytes (50 bytes, sorts by id, then
#: by position, so the first occurrence of a duplicate comes first). Compact because a 1 GB
#: pack of small files has a quarter of a million of them.
Entry = bytes


def entry(oid: bytes, kind: int, block_off: int, rec_off: int, length: int, codec: int) -> bytes:
    return oid + ENTRY.pack(block_off, rec_off, length, kind, codec)


def idx_path(pack_path: str) -> str:
    return os.path.splitext(pack_path)[0] + ".idx"


def encode_index(checksum: bytes, entries: list[Entry]) -> bytes:
    """The index bytes for a pack's entries (duplicates keep the first occurrence)."""
    entries.sort()
    uniq: list[Entry] = []
    last = b""
    for e in entries:
        oid = e[:32]
        if oid != last:
            uniq.append(e)
            last = oid
    fan = [0] * 256
    for e in uniq:
        fan[e[0]] += 1
    total = 0
    for i in range(256):
        total += fan[i]
        fan[i] = total
    parts = [
        HEAD.pack(MAGIC, len(uniq), checksum),
        FANOUT.pack(*fan),
        b"".join([e[:32] for e in uniq]),
        b"".join([e[32:] for e in uniq]),
    ]
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def decode_index(raw: bytes, path: str) -> tuple[int, bytes, tuple[int, ...], bytes, bytes]:
    """(count, pack checksum, fanout, id section, entry section) of index bytes.

    Checks the shape, not the trailing hash: that is fsck's job (:func:`verify_index`), so
    opening a pack costs no re-hash of its index.
    """
    head_len = HEAD.size + FANOUT.size
    if len(raw) < head_len + 32:
        raise PackError("bad_pack", f"corrupt pack index {path}")
    magic, count, checksum = HEAD.unpack_from(raw, 0)
    if magic != MAGIC or len(raw) != head_len + count * (32 + ENTRY_LEN) + 32:
        raise PackError("bad_pack", f"corrupt pack index {path}")
    fanout = FANOUT.unpack_from(raw, HEAD.size)
    ids_at = head_len
    ent_at = ids_at + 32 * count
    return count, checksum, fanout, raw[ids_at:ent_at], raw[ent_at : ent_at + ENTRY_LEN * count]


def verify_index(raw: bytes, path: str) -> None:
    """Raise PackError unless the index's trailing SHA-256 matches its bytes."""
    if len(raw) < 32 or hashlib.sha256(raw[:-32]).digest() != raw[-32:]:
        raise PackError("bad_pack", f"corrupt pack index {path}")


class IdSequence(Sequence[bytes]):
    """The sorted id section of an index as a sequence, for bisect without copying."""

    def __init__(self, ids: bytes) -> None:
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids) // 32

    def __getitem__(self, i: Any) -> Any:
        return self._ids[32 * i : 32 * i + 32]
