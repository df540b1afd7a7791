"""muse reset: move the current branch (or a detached HEAD) to another commit, as git does.

``--soft`` moves only the branch; ``--mixed`` (the default) is the same here, since Muse has
no staging area to reset (accepted because git users type it); ``--hard`` also makes the
working tree match, through checkout's forced path (nothing written through a symlink, outside
the tree or into ``.muse``). The old commit is kept in ``ORIG_HEAD`` and in the reflog, so
``muse reset --hard ORIG_HEAD`` or ``HEAD@{1}`` undoes a reset.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from muse.errors import MuseError, UsageError

if TYPE_CHECKING:
    from muse.core.repo import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--soft", dest="mode", action="store_const", const="soft")
    mode.add_argument(
        "--mixed",
        dest="mode",
        action="store_const",
        const="mixed",
        help="the default; the same as --soft (muse has no staging area)",
    )
    mode.add_argument(
        "--hard",
        dest="mode",
        action="store_const",
        const="hard",
        help="also make the working tree match (discards uncommitted changes)",
    )
    p.add_argument("rev", nargs="?", default="HEAD", help="commit to move to (default: HEAD)")
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo, resolve, short
    from muse.client.progress import Progress
    from muse.core import merge as m
    from muse.core.checkout import CheckoutConflict, UnsafePath, checkout_tree
    from muse.core.index import load_index
    from muse.core.refs import RefConflict

    repo = open_repo()
    mode = args.mode or "mixed"
    old = repo.head_commit()
    if old is None:
        raise UsageError("HEAD has no commits yet: there is nothing to reset")
    merging = m.merge_head(repo) is not None or reverting(repo)
    if merging and mode == "soft":
        raise MuseError("cannot do a soft reset in the middle of a merge or revert")
    target = resolve(repo, args.rev)
    tree = repo.read_commit(target).tree
    try:
        if mode == "hard":
            checkout_tree(repo, tree, force=True, progress=Progress(args.quiet))
        else:  # the working tree stays; what differs from the new HEAD is now a local change
            with load_index(repo.muse_dir, lock=True) as idx:
                idx.base = tree
                idx.save()
        if merging:
            clear_undo_state(repo)
        write_orig_head(repo, old)
        repo.refs.update_head(target, old, log=f"reset: moving to {args.rev}")
    except (CheckoutConflict, UnsafePath, RefConflict) as e:
        raise MuseError(str(e)) from None
    if mode == "hard" and not args.quiet:
        subject = repo.read_commit(target).message.split("\n", 1)[0]
        sys.stdout.write(f"HEAD is now at {short(target)} {subject}\n")
    return 0


REVERT_HEAD = "REVERT_HEAD"


def reverting(repo: Repository) -> bool:
    """Whether a revert stopped on conflicts (muse.cli.cmd_revert) is waiting."""
    return os.path.exists(os.path.join(repo.muse_dir, REVERT_HEAD))


def clear_undo_state(repo: Repository) -> None:
    """Forget a merge or revert in progress (its MERGE_* files and REVERT_HEAD)."""
    from muse.core import merge as m

    m.clear_state(repo)
    try:
        os.unlink(os.path.join(repo.muse_dir, REVERT_HEAD))
    except FileNotFoundError:
        pass


def write_orig_head(repo: Repository, oid: bytes) -> None:
    """``ORIG_HEAD``: where HEAD was before a reset (as git keeps it)."""
    from muse.core.lockfile import write_atomic

    path = os.path.join(repo.muse_dir, "ORIG_HEAD")
    write_atomic(path, oid.hex().encode() + b"\n", what="ORIG_HEAD")
