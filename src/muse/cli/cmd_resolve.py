"""muse resolve: mark conflicted files as resolved (git add of a conflicted file), or list."""

from __future__ import annotations

import argparse
import os
import sys

from muse.errors import MuseError, UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH", help="files fixed by hand")
    p.add_argument("-l", "--list", action="store_true", help="list the unresolved files")
    p.add_argument(
        "-f", "--force", action="store_true", help="resolve even if conflict markers remain"
    )
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.core import merge as m

    repo = open_repo()
    left = m.conflicted_paths(repo)
    if args.list or not args.paths:
        if not left and not args.quiet:
            sys.stdout.write("no unresolved conflicts\n")
        for p in left:
            sys.stdout.write(p + "\n")
        return 0
    cwd = os.path.relpath(os.getcwd(), repo.root)
    wanted = []
    for p in args.paths:
        rel = os.path.normpath(os.path.join(cwd, p)).replace(os.sep, "/")
        if rel.startswith("../") or rel == "..":
            raise UsageError(f"{p}: outside the repository")
        wanted.append(rel)
    if not left:
        raise MuseError("there are no conflicts to resolve (no merge or revert in progress)")
    unknown = sorted(set(wanted).difference(left))
    if unknown:
        raise UsageError(f"not a conflicted file: {', '.join(unknown[:5])}")
    marked = m.unresolved(repo, wanted)
    if marked and not args.force:
        raise MuseError(
            f"conflict markers remain in {', '.join(marked[:5])} "
            "(edit them out, or 'muse resolve --force' to keep the file as it is)"
        )
    m.mark_resolved(repo, wanted)
    if not args.quiet:
        rest = len(left) - len(set(wanted))
        s = "" if rest == 1 else "s"
        sys.stderr.write(
            "All conflicts resolved: 'muse commit' to conclude.\n"
            if rest == 0
            else f"{rest} conflicted file{s} left.\n"
        )
    return 0
