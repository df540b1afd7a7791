"""muse add: there is no staging area; say so, and mark conflicted files resolved.

``muse commit`` records the whole working tree, so ``git add`` has nothing to do here. A git
user's ``muse add . && muse commit -m ...`` still works: add checks that the paths exist,
and during a merge or revert it marks the conflicted ones resolved, as ``git add`` does.
"""

from __future__ import annotations

import argparse
import os
import sys

from muse.errors import NotFound, UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.core import merge as m

    repo = open_repo()
    rels = []
    for p in args.paths:
        full = os.path.normpath(os.path.join(os.getcwd(), p))
        rel = os.path.relpath(full, repo.root).replace(os.sep, "/")
        if rel == ".." or rel.startswith("../"):
            raise UsageError(f"{p}: outside the repository")
        if not os.path.lexists(full):
            raise NotFound(f"pathspec {p!r} did not match any file")
        rels.append("" if rel == "." else rel)
    conflicted = m.conflicted_paths(repo)
    chosen = [
        c for c in conflicted if any(r == "" or c == r or c.startswith(r + "/") for r in rels)
    ]
    if chosen:
        marked = m.unresolved(repo, chosen)
        if marked:
            raise UsageError(
                f"conflict markers remain in {', '.join(marked[:5])}: edit them out first"
            )
        m.mark_resolved(repo, chosen)
        if not args.quiet:
            n = len(chosen)
            sys.stderr.write(f"marked {n} conflicted file{'' if n == 1 else 's'} resolved\n")
        return 0
    if not args.quiet:
        sys.stderr.write(
            "note: muse has no staging area: 'muse commit' records every change in the "
            "working tree (see 'muse status'); 'muse rm PATH' removes a file\n"
        )
    return 0
