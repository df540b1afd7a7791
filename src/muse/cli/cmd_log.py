"""muse log: commit history."""

from __future__ import annotations

import argparse
import sys

from muse.errors import NotFound


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("revisions", nargs="*", help="where to start (default HEAD)")
    p.add_argument("--oneline", action="store_true", help="one line per commit")
    p.add_argument("-n", "--max-count", type=int, default=None, metavar="N")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import format_date, open_repo, resolve, short
    from muse.core.graph import walk

    repo = open_repo()
    if args.revisions:
        tips = [resolve(repo, r) for r in args.revisions]
    else:
        head = repo.head_commit()
        if head is None:
            branch = repo.current_branch() or "HEAD"
            raise NotFound(f"your current branch '{branch}' has no commits yet")
        tips = [head]
    out = sys.stdout
    for i, (oid, c) in enumerate(walk(repo, tips)):
        if args.max_count is not None and i >= args.max_count:
            break
        first = c.message.split("\n", 1)[0]
        if args.oneline:
            out.write(f"{short(oid)} {first}\n")
            continue
        out.write(f"commit {oid.hex()}\n")
        if len(c.parents) > 1:
            out.write("Merge: " + " ".join(short(p) for p in c.parents) + "\n")
        out.write(f"Author: {c.author.name} <{c.author.email}>\n")
        out.write(f"Date:   {format_date(c.author.time, c.author.tz_minutes)}\n\n")
        for line in c.message.rstrip("\n").split("\n"):
            out.write(f"    {line}\n" if line else "\n")
        out.write("\n")
    return 0
