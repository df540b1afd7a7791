"""Path safety: the one place that decides whether a tree entry may be written to disk.

Trees come from the network, so every name is checked before a checkout writes anything:
no ``.``/``..``, no ``/`` or NUL (decode_tree already refuses those), no ``.muse`` in any
letter case or with characters that some file systems ignore or strip, and no two names in
one directory that a case-insensitive or normalizing file system would treat as the same.
"""

from __future__ import annotations

import unicodedata

from muse.errors import MuseError

# Characters HFS+ ignores in names, and the trailing dots/spaces Windows strips.
_IGNORABLE = dict.fromkeys(
    [0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E]
    + list(range(0x206A, 0x2070))
    + [0xFEFF]
)


class UnsafePath(MuseError, ValueError):
    """A tree holds a name that must never be written into a working tree."""


def collision_key(name: str) -> str:
    """The name as a case-insensitive, normalizing file system would see it."""
    if name.isascii():
        return name.lower()
    return unicodedata.normalize("NFC", name.translate(_IGNORABLE)).casefold()


def is_muse_dir_name(name: str) -> bool:
    key = collision_key(name).rstrip(". ")
    return key == ".muse" or key == "muse~1"


def check_name(name: str, where: str = "") -> None:
    """Refuse a single entry name (the checks decode_tree does not already make)."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafePath(f"unsafe name {name!r} in {where or 'the root tree'}")
    if is_muse_dir_name(name):
        raise UnsafePath(f"refusing to check out {where + '/' if where else ''}{name}")


#: What Linux, macOS and Windows file systems allow: a name of 255 bytes, a path of 4,095.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095


def check_dir_names(names: list[str], where: str = "") -> None:
    """Check every name of one directory, including case/normalization collisions and the
    lengths file systems allow (refused here with a message, not by ENAMETOOLONG midway)."""
    seen: dict[str, str] = {}
    base = len(where.encode("utf-8", "surrogateescape")) + 1 if where else 0
    longest = max((len(n) for n in names), default=0)
    if longest * 4 > MAX_NAME_BYTES or base + longest * 4 > MAX_PATH_BYTES:
        for name in names:  # only when some name might be too long: measure in bytes
            n = len(name.encode("utf-8", "surrogateescape"))
            shown = f"{where}/{name}" if where else name
            if n > MAX_NAME_BYTES:
                raise UnsafePath(
                    f"refusing to check out {shown[:80]}...: a name of {n} bytes "
                    f"(file systems allow {MAX_NAME_BYTES})"
                )
            if base + n > MAX_PATH_BYTES:
                raise UnsafePath(
                    f"refusing to check out {shown[:80]}...: a path of {base + n} bytes "
                    f"(file systems allow {MAX_PATH_BYTES})"
                )
    for name in names:
        if name.isascii() and name and "/" not in name and "\0" not in name:
            # the common case, inlined (a checkout checks every name of the tree once)
            key = name.lower()
            if name in (".", "..") or key.rstrip(". ") in (".muse", "muse~1"):
                check_name(name, where)  # raises with the message
        else:
            check_name(name, where)
            key = collision_key(name)
        other = seen.get(key)
        if other is not None:
            shown = f"{where}/" if where else ""
            raise UnsafePath(
                f"{shown}{other} and {shown}{name} collide on case-insensitive file systems"
            )
        seen[key] = name


def check_link_target(target: bytes, path: str) -> None:
    if not target or b"\0" in target or len(target) > 4095:
        raise UnsafePath(f"invalid symlink target for {path}")
