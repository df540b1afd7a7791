"""muse restore: put files back as a commit has them (HEAD by default), discarding changes.

As ``git restore PATH``: each PATH (a file or a directory; ``.`` is everything below the
current directory) gets the source commit's version; a file the branch tracks (HEAD has it)
that the source lacks is removed; untracked files are left alone. Files are written by
checkout's forced path, so nothing goes through a symlink, outside the tree or into
``.muse``; other files' changes stay as they are.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from muse.errors import MuseError, NotFound, UsageError

if TYPE_CHECKING:
    from muse.core.checkout import CheckoutStats
    from muse.core.repo import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to restore")
    p.add_argument("-s", "--source", default="HEAD", help="commit to take them from")
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo, resolve
    from muse.core.checkout import CheckoutConflict, UnsafePath
    from muse.core.objects import EMPTY_TREE_ID
    from muse.core.treediff import tree_reader, walk_tree

    repo = open_repo()
    specs = pathspecs(repo, args.paths)
    source = repo.read_commit(resolve(repo, args.source)).tree
    get = tree_reader(repo.store)
    head_tree = repo.head_tree() or EMPTY_TREE_ID
    wanted = {p: (mode, oid) for p, mode, oid in walk_tree(get, source) if covered(p, specs)}
    tracked = {p for p, _, _ in walk_tree(get, head_tree) if covered(p, specs)}
    for s in specs:
        if not any(covered(p, [s]) for p in wanted) and not any(covered(p, [s]) for p in tracked):
            raise NotFound(f"pathspec '{s or '.'}' did not match any file known to muse")
    try:
        stats = restore_entries(repo, wanted, tracked - wanted.keys())
    except (CheckoutConflict, UnsafePath) as e:
        raise MuseError(str(e)) from None
    if not args.quiet and stats.written + stats.removed:
        n = stats.written + stats.removed
        sys.stderr.write(f"Restored {n} file{'s' if n != 1 else ''} from {args.source}\n")
    return 0


def restore_entries(
    repo: Repository, wanted: dict[str, tuple[int, bytes]], gone: set[str]
) -> CheckoutStats:
    """Write ``wanted`` files and remove ``gone`` ones through checkout's forced path; the
    index's base tree stays, so other files' edits (and these, if not HEAD's) stay local."""
    from muse.core.checkout import checkout_tree
    from muse.core.index import load_index
    from muse.core.merge import apply_changes
    from muse.core.worktree import snapshot

    with load_index(repo.muse_dir, lock=True) as idx:
        base = idx.base if idx.exists else repo.head_tree()
        res, idx = snapshot(repo, idx)
        changes: dict[str, tuple[int, bytes] | None] = dict(wanted)
        for p in gone:
            changes[p] = None
        target = apply_changes(repo, res.tree, changes)
        stats = checkout_tree(repo, target, force=True, index=idx)
        idx.base = base
        idx.save()
    return stats


def pathspecs(repo: Repository, paths: list[str]) -> list[str]:
    """PATH... relative to the current directory -> paths from the top ('' for all)."""
    out = []
    for p in paths:
        rel = os.path.relpath(os.path.abspath(p), repo.root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
            raise UsageError(f"{p}: outside the repository at {repo.root}")
        rel = "" if rel == os.curdir else rel.replace(os.sep, "/")
        if rel.split("/")[0] == ".muse":
            raise UsageError(f"{p}: .muse is the repository itself, not a tracked path")
        out.append(rel)
    return out


def covered(path: str, specs: list[str]) -> bool:
    return any(not s or path == s or path.startswith(s + "/") for s in specs)
