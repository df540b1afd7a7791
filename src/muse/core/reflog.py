"""Reflogs: where HEAD and each branch pointed before, so that any undo can itself be undone.

One file per ref, ``.muse/logs/<ref name>`` (``logs/HEAD``, ``logs/refs/heads/main``,
``logs/refs/stash``), one line per update, oldest first, in git's format with 64-hex ids::

    <old id> <new id> <name> <<email>> <unix seconds> <+hhmm>\\t<message>\\n

A missing old or new id (a ref created or deleted) is 64 zeros. Lines are appended with one
``write`` on an ``O_APPEND`` descriptor while the ref's lock is held (muse.core.refs), so two
writers never interleave inside a line. Entry 0 of ``REF@{N}`` is the newest line.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from muse.core.record import Record

ZERO = bytes(32)
LOGS = "logs"

Who = Callable[[], tuple[str, str, int, int]]  # (name, email, unix seconds, tz minutes)


class Entry(Record):
    _fields = ("old", "new", "name", "email", "when", "tz", "message")

    def __init__(
        self, old: bytes, new: bytes, name: str, email: str, when: int, tz: int, message: str
    ) -> None:
        self.old = old
        self.new = new
        self.name = name
        self.email = email
        self.when = when
        self.tz = tz
        self.message = message


def logged(ref: str) -> bool:
    """Which refs keep a log (git's core.logAllRefUpdates in a working repository): HEAD,
    branches, remote-tracking branches and the stash; tags do not move, so they have none."""
    return ref == "HEAD" or ref == "refs/stash" or ref.startswith(("refs/heads/", "refs/remotes/"))


def log_path(muse_dir: str, ref: str) -> str:
    return os.path.join(muse_dir, LOGS, *ref.split("/"))


def format_line(e: Entry) -> bytes:
    sign = "+" if e.tz >= 0 else "-"
    off = abs(e.tz)
    msg = " ".join(e.message.split())  # one line, as git keeps it
    return (
        f"{e.old.hex()} {e.new.hex()} {e.name} <{e.email}> {e.when} "
        f"{sign}{off // 60:02d}{off % 60:02d}\t{msg}\n"
    ).encode("utf-8", "replace")


def parse_line(line: bytes) -> Entry | None:
    """One entry, or None for a line that is not one (a torn or foreign line is skipped)."""
    try:
        text = line.decode("utf-8").rstrip("\n")
        head, _, message = text.partition("\t")
        old_hex, new_hex, rest = head.split(" ", 2)
        ident, _, stamp = rest.rpartition("> ")
        name, _, email = ident.partition(" <")
        when_s, tz_s = stamp.split(" ")
        tz = int(tz_s[1:3]) * 60 + int(tz_s[3:5])
        old, new = bytes.fromhex(old_hex), bytes.fromhex(new_hex)
    except (ValueError, IndexError, UnicodeDecodeError):
        return None
    if len(old) != 32 or len(new) != 32 or len(tz_s) != 5 or tz_s[0] not in "+-":
        return None
    return Entry(old, new, name, email, int(when_s), -tz if tz_s[0] == "-" else tz, message)


def append(muse_dir: str, ref: str, entry: Entry) -> None:
    """Add one line to ref's log (created with its directories when missing)."""
    path = log_path(muse_dir, ref)
    data = format_line(entry)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        os.write(fd, data)  # one write: O_APPEND keeps a line whole against another writer
    finally:
        os.close(fd)


def read(muse_dir: str, ref: str) -> list[Entry]:
    """Every entry of ref's log, oldest first ([] when it has none)."""
    try:
        with open(log_path(muse_dir, ref), "rb") as f:
            lines = f.read().split(b"\n")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return [e for e in (parse_line(ln) for ln in lines if ln) if e is not None]


def nth(muse_dir: str, ref: str, n: int) -> bytes | None:
    """What ``ref@{n}`` names: the new id of the n-th newest entry (None: no such entry).
    Past the newest entry's end, ``@{len}`` is the oldest entry's old id, as in git."""
    entries = read(muse_dir, ref)
    if n < len(entries):
        oid = entries[-1 - n].new
    elif n == len(entries) and entries:
        oid = entries[0].old
    else:
        return None
    return None if oid == ZERO else oid


def write_all(muse_dir: str, ref: str, entries: list[Entry]) -> None:
    """Replace ref's log (stash drop rewrites refs/stash's), atomically."""
    from muse.core.lockfile import write_atomic

    path = log_path(muse_dir, ref)
    if not entries:
        delete(muse_dir, ref)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, b"".join(format_line(e) for e in entries), what=f"reflog {ref}")


def delete(muse_dir: str, ref: str) -> None:
    """A deleted branch loses its log, as in git (HEAD's log still has its commits)."""
    try:
        os.unlink(log_path(muse_dir, ref))
    except (FileNotFoundError, NotADirectoryError):
        pass


def rename(muse_dir: str, old_ref: str, new_ref: str) -> None:
    """A renamed branch keeps its history under the new name (git branch -m)."""
    src, dst = log_path(muse_dir, old_ref), log_path(muse_dir, new_ref)
    if not os.path.exists(src):
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.replace(src, dst)
