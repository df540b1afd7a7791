"""Comparing the id sections of tree bodies (32 bytes per entry) without slicing in Python.

Consecutive versions of a directory differ by a few entries; whole runs compared with
memcmp (``startswith``/``endswith`` on views, binary search on the length) find the window
that changed in microseconds. Used by negotiation and by the receiver's structure check.
"""

from __future__ import annotations

__all__ = ["common_ends", "common_prefix", "common_suffix", "has_id"]


def common_ends(a: bytes, b: bytes, a_modes: bytes, b_modes: bytes) -> tuple[int, int]:
    """(p, s): the first p and the last s entries of trees a and b are equal (id and mode).

    a and b are id sections (32 bytes per entry). Consecutive versions of a directory differ
    by a few entries, so comparing whole runs with memcmp (startswith/endswith on views,
    binary search on the length) finds the window that changed in a few microseconds instead
    of slicing every id in Python.
    """
    n = len(a_modes)
    m = len(b_modes)
    k = min(n, m)
    mb, mbm = memoryview(b), memoryview(b_modes)
    p = common_prefix(a, mb, k, 32)
    p = common_prefix(a_modes, mbm, p, 1)
    s = common_suffix(a, mb, k - p, 32)
    s = common_suffix(a_modes, mbm, s, 1)
    return p, s


def common_prefix(a: bytes, mb: memoryview, limit: int, unit: int) -> int:
    if a.startswith(mb[: limit * unit]):
        return limit
    lo, hi = 0, limit  # a starts with mb[:lo*unit], not with mb[:hi*unit]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a.startswith(mb[: mid * unit]):
            lo = mid
        else:
            hi = mid
    return lo


def common_suffix(a: bytes, mb: memoryview, limit: int, unit: int) -> int:
    end = len(mb)
    if a.endswith(mb[end - limit * unit :]):
        return limit
    lo, hi = 0, limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a.endswith(mb[end - mid * unit :]):
            lo = mid
        else:
            hi = mid
    return lo


def has_id(ids: bytes, oid: bytes) -> bool:
    """Whether oid is one of the 32-byte entries of an id section (aligned search)."""
    i = ids.find(oid)
    while i >= 0:
        if i % 32 == 0:
            return True
        i = ids.find(oid, i + 1)
    return False
