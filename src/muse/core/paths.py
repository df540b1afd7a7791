"""Path policy: the one place that decides whether a tree entry may be written to disk.

Trees come from the network, so the same rules are applied by the client before a checkout
writes anything and by the hub before a push is accepted (docs/format.md §3.1): a tree that
one client would refuse is never stored, so no writer can make a branch impossible to clone.
Refused, besides what the tree grammar already refuses (``.``/``..``, ``/``, NUL):

- ``.muse`` in any spelling a file system may read as it: any letter case, trailing dots or
  spaces (Windows strips them), an NTFS stream (``.muse::$INDEX_ALLOCATION``), the 8.3 short
  name ``MUSE~1``, code points HFS+ ignores (zero-width joiners...), compatibility forms
  (fullwidth letters) after NFKC -- as git's ``is_ntfs_dotgit``/``is_hfs_dotgit``;
- a backslash (a separator on Windows, so ``\\\\server\\share`` too), a drive letter ``C:``,
  a Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9, CONIN$, CONOUT$, also with an
  extension: ``nul.txt``);
- a name over 255 bytes, a path over 4,095 (what Linux, macOS and Windows allow);
- two names of one directory that a case-insensitive or normalizing file system reads as one
  (case folding, NFC, ignorable code points, trailing dots/spaces).

Every check has a fast path for ASCII names, which is nearly every name.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from muse.errors import MuseError

#: What Linux, macOS and Windows file systems allow: a name of 255 bytes, a path of 4,095.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095

# Code points HFS+ ignores in names (git's utf8.c next_hfs_char).
_IGNORABLE = dict.fromkeys(
    [0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E]
    + list(range(0x206A, 0x2070))
    + [0xFEFF]
)

_DEVICES = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [f"com{i}" for i in range(1, 10)]
    + [f"lpt{i}" for i in range(1, 10)]
)

# Substrings without which an ASCII names section cannot hold a refused name (lower case).
_HINTS = (b":", b"muse", b"con", b"prn", b"aux", b"nul", b"com", b"lpt")
_suspect_re: Any = None


class UnsafePath(MuseError, ValueError):
    """A tree holds a name that must never be written into a working tree."""


def collision_key(name: str) -> str:
    """The name as a case-insensitive, normalizing file system would see it."""
    if name.isascii():
        return name.lower().rstrip(". ") or name
    key = unicodedata.normalize("NFC", name.translate(_IGNORABLE)).casefold()
    return key.rstrip(". ") or key


def _reserved(key: str) -> str | None:
    """Why a lower-cased (or NFKC-casefolded) name is refused as .muse or a device name."""
    base = key.split(":", 1)[0]
    trimmed = base.rstrip(". ")
    if trimmed == ".muse" or (trimmed.startswith("muse~") and trimmed[5:].isdigit()):
        return "is the .muse directory as some file systems read it"
    if base.split(".", 1)[0].rstrip(" ") in _DEVICES:
        return "is a Windows device name"
    return None


def _muse_key(name: str) -> str:
    return unicodedata.normalize("NFKC", name.translate(_IGNORABLE)).casefold()


def is_muse_dir_name(name: str) -> bool:
    """Whether a name is ``.muse`` as some file system reads it (never tracked, never written)."""
    key = name.lower() if name.isascii() else _muse_key(name)
    trimmed = key.split(":", 1)[0].rstrip(". ")
    return trimmed == ".muse" or (trimmed.startswith("muse~") and trimmed[5:].isdigit())


def name_problem(name: str) -> str | None:
    """Why one entry name is refused (a phrase to follow the name), or None."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        return "is not a valid entry name"
    if "\\" in name:
        return "holds a backslash (a directory separator on Windows)"
    if len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha():
        return "starts with a drive letter"
    if name.isascii():
        size, key = len(name), name.lower()
    else:
        size, key = len(name.encode("utf-8", "surrogateescape")), _muse_key(name)
    if size > MAX_NAME_BYTES:
        return f"is a name of {size} bytes (file systems allow {MAX_NAME_BYTES})"
    return _reserved(key)


def check_name(name: str, where: str = "") -> None:
    """Refuse a single entry name (UnsafePath naming its path)."""
    why = name_problem(name)
    if why is not None:
        raise UnsafePath(f"refusing to check out {_shown(where, name)!r}: it {why}")


def _shown(where: str, name: str) -> str:
    path = f"{where}/{name}" if where else name
    return path if len(path) <= 200 else path[:100] + "..." + path[-60:]


def check_dir_names(names: list[str], where: str = "") -> None:
    """Check every name of one directory: each name, collisions, and the path lengths file
    systems allow (refused here with a message, not by ENAMETOOLONG midway)."""
    base = len(where.encode("utf-8", "surrogateescape")) + 1 if where else 0
    longest = max((len(n) for n in names), default=0)
    if base + longest * 4 > MAX_PATH_BYTES:
        for name in names:  # only when some name might be too long: measure in bytes
            n = len(name.encode("utf-8", "surrogateescape"))
            if n <= MAX_NAME_BYTES and base + n > MAX_PATH_BYTES:
                raise UnsafePath(
                    f"refusing to check out {_shown(where, name)!r}: a path of {base + n} "
                    f"bytes (file systems allow {MAX_PATH_BYTES})"
                )
    problem = dir_problem(names)
    if problem is not None:
        name, why = problem
        raise UnsafePath(f"refusing to check out {_shown(where, name)!r}: it {why}")


def dir_problem(names: list[str]) -> tuple[str, str] | None:
    """(name, why) of the first refused name of one directory, or None. Collisions are
    reported on the second name of the pair."""
    seen: dict[str, str] = {}
    for name in names:
        if name.isascii():
            key = name.lower()
            if (
                "\\" in name
                or ":" in name
                or len(name) > MAX_NAME_BYTES
                or key.endswith((".", " "))
                or "muse" in key
                or key[:3] in ("con", "prn", "aux", "nul", "com", "lpt")
                or not name
                or "/" in name
                or "\0" in name
            ):
                why = name_problem(name)
                if why is not None:
                    return name, why
                key = collision_key(name)
        else:
            why = name_problem(name)
            if why is not None:
                return name, why
            key = collision_key(name)
        other = seen.get(key)
        if other is not None:
            return name, f"collides with {other!r} on case-insensitive file systems"
        seen[key] = name
    return None


def names_section_problem(section: bytes, n: int) -> tuple[int, tuple[str, str] | None]:
    """(longest name in bytes, :func:`dir_problem`) for a tree's raw names section: ``n``
    NUL-terminated names that the tree grammar has already accepted. Whole-buffer checks for
    the usual ASCII tree; the per-name rules only where a name might be refused. What the
    hub runs on every tree of a push."""
    if section.isascii():
        low = section.lower()
        keys = low.split(b"\0")
        longest = max(map(len, keys))
        if (
            longest <= MAX_NAME_BYTES
            and len(set(keys)) == n + 1
            and b".\0" not in low
            and b" \0" not in low
            and b"\\" not in low
            and (not any(h in low for h in _HINTS) or _suspect().search(low) is None)
        ):
            return longest, None  # ("config", "icons", "common": hints, not refused names)
    names = section.decode("utf-8", "surrogateescape").split("\0")
    names.pop()
    longest = max((len(x.encode("utf-8", "surrogateescape")) for x in names), default=0)
    return longest, dir_problem(names)


def _suspect() -> Any:
    """Names (lower-cased ASCII, each ending in NUL) that the per-name rules must look at."""
    global _suspect_re
    if _suspect_re is None:
        import re  # compiled on first use, not at every start-up

        _suspect_re = re.compile(
            rb"(?:^|\0)(?:[a-z]:|\.muse[. ]*[:\0]|muse~[0-9]+[. ]*[:\0]"
            rb"|(?:con|prn|aux|nul|com[1-9]|lpt[1-9]|conin\$|conout\$) *[.:\0])"
        )
    return _suspect_re


def check_link_target(target: bytes, path: str) -> None:
    if not target or b"\0" in target or len(target) > MAX_PATH_BYTES:
        raise UnsafePath(f"invalid symlink target for {path}")
