"""The checkout journal: a mark that the working tree is being written.

``.muse/CHECKOUT_IN_PROGRESS`` holds ``<base hex or -> <target hex> <pid>`` from the moment a
checkout (or the checkout inside pull, merge or clone) starts writing files until its index
is saved. A command killed in between leaves it behind, so the next checkout knows that
what lies at the target's paths is its own half-finished work (and rewrites it), status
can say so, and commit refuses to record a half-written tree. The pid lets the next checkout
tell that the ``index.lock`` left beside it belongs to a process that no longer exists, and
remove it instead of asking the user to. Kept tiny: status reads it.
"""

from __future__ import annotations

import os

from muse.core.lockfile import process_alive, write_atomic
from muse.errors import MuseError

JOURNAL = "CHECKOUT_IN_PROGRESS"


class CorruptJournal(MuseError):
    """The journal cannot be read."""


def interrupted_checkout(muse_dir: str) -> tuple[bytes | None, bytes] | None:
    """(base, target) of a checkout that was stopped while it wrote files, or None."""
    path = os.path.join(muse_dir, JOURNAL)
    try:
        with open(path, "rb") as f:
            parts = f.read().split()
        base = None if parts[0] == b"-" else bytes.fromhex(parts[0].decode())
        return base, bytes.fromhex(parts[1].decode())
    except FileNotFoundError:
        return None
    except (ValueError, IndexError, UnicodeDecodeError):
        raise CorruptJournal(f"{path} is corrupt: remove it, then run 'muse status'") from None


def begin_checkout(muse_dir: str, base: bytes | None, target: bytes) -> None:
    text = f"{base.hex() if base else '-'} {target.hex()} {os.getpid()}\n"
    write_atomic(os.path.join(muse_dir, JOURNAL), text.encode(), lock=False)


def release_dead_lock(muse_dir: str) -> None:
    """Remove ``index.lock`` when the journal shows the checkout that took it was killed
    (its process is gone); a lock of a live process, or with no journal, stays."""
    path = os.path.join(muse_dir, JOURNAL)
    try:
        with open(path, "rb") as f:
            parts = f.read().split()
        pid = int(parts[2])
    except (OSError, ValueError, IndexError):
        return
    if pid == os.getpid() or process_alive(pid):
        return
    try:
        os.unlink(os.path.join(muse_dir, "index.lock"))
    except FileNotFoundError:
        pass


def end_checkout(muse_dir: str) -> None:
    try:
        os.unlink(os.path.join(muse_dir, JOURNAL))
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------------------ clone
#: ``.muse/CLONE_IN_PROGRESS``: the URL of a clone that has not finished. Written before
#: anything else of the repository and removed last, so a clone killed at any point leaves a
#: directory that says it is unfinished (status, fsck) and that the same ``muse clone``
#: completes.
CLONE_MARKER = "CLONE_IN_PROGRESS"


def unfinished_clone(muse_dir: str) -> str | None:
    """The URL of the clone that was stopped before it finished in this repository, or None."""
    try:
        with open(os.path.join(muse_dir, CLONE_MARKER), "rb") as f:
            return f.read().decode("utf-8", "replace").strip() or "?"
    except FileNotFoundError:
        return None


def begin_clone(muse_dir: str, url: str) -> None:
    write_atomic(os.path.join(muse_dir, CLONE_MARKER), (url + "\n").encode(), lock=False)


def end_clone(muse_dir: str) -> None:
    try:
        os.unlink(os.path.join(muse_dir, CLONE_MARKER))
    except FileNotFoundError:
        pass


def finish_clone_hint(url: str, root: str) -> str:
    """What to run to finish an interrupted clone (one line, for status, fsck and clone)."""
    return f"run 'muse clone {url} {root}' again to finish it"
