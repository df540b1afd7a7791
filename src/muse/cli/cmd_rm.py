"""muse rm: remove tracked files from the working tree, and so from the next commit."""

from __future__ import annotations

import argparse
import os
import sys

from muse.errors import MuseError, NotFound, UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-r", action="store_true", help="remove a directory's tracked files")
    p.add_argument("-f", "--force", action="store_true", help="even with uncommitted changes")
    p.add_argument(
        "--cached", action="store_true", help="(not available: muse has no staging area)"
    )
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.core.treediff import tree_reader, walk_tree
    from muse.core.worktree import status

    if args.cached:
        raise UsageError(
            "--cached needs a staging area, which muse does not have: add the path to "
            ".museignore to stop tracking it and keep the file"
        )
    repo = open_repo()
    head_tree = repo.head_tree()
    tracked = (
        {p for p, _m, _i in walk_tree(tree_reader(repo.store), head_tree)} if head_tree else set()
    )
    changed = {c[0] for c in status(repo).changes}
    victims: list[str] = []
    for p in args.paths:
        full = os.path.normpath(os.path.join(os.getcwd(), p))
        rel = os.path.relpath(full, repo.root).replace(os.sep, "/")
        if rel == ".." or rel.startswith("../") or rel.split("/")[0] == ".muse":
            raise UsageError(f"{p}: outside the repository")
        inside = sorted(
            t for t in tracked if t == rel or (rel in ("", ".") or t.startswith(rel + "/"))
        )
        if not inside:
            raise NotFound(f"pathspec {p!r} did not match any tracked file")
        if inside != [rel] and not args.r:
            raise UsageError(f"not removing {p!r} recursively without -r")
        victims.extend(inside)
    dirty = sorted(set(victims) & changed)
    if dirty and not args.force:
        raise MuseError(
            f"{', '.join(dirty[:5])} ha{'s' if len(dirty) == 1 else 've'} uncommitted changes "
            "(use -f to remove anyway)"
        )
    for rel in victims:
        full = os.path.join(repo.root, *rel.split("/"))
        parent = os.path.dirname(full)
        real_parent = os.path.realpath(parent)
        if not (
            real_parent == os.path.realpath(repo.root)
            or real_parent.startswith(os.path.realpath(repo.root) + os.sep)
        ) or os.path.islink(parent):
            raise MuseError(f"{rel}: refusing to remove through a symlinked directory")
        try:
            os.unlink(full)
        except FileNotFoundError:
            pass
        d = parent
        while d != repo.root:
            try:
                os.rmdir(d)
            except OSError:
                break
            d = os.path.dirname(d)
        if not args.quiet:
            sys.stdout.write(f"rm '{rel}'\n")
    return 0
