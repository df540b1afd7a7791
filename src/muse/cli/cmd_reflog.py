"""muse reflog: where HEAD or a branch has pointed, newest first, as ``git reflog`` shows it.

Each line is ``<id> REF@{N}: <message>``; any of those names works as a revision, so
``muse reset --hard HEAD@{1}`` undoes the last move of HEAD (muse.core.reflog keeps the log).
"""

from __future__ import annotations

import argparse
import sys

from muse.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("words", nargs="*", metavar="[show] REF", help="HEAD (default) or a branch")
    p.add_argument("-n", "--max-count", type=int, default=None, help="show at most N entries")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo, short
    from muse.core import reflog
    from muse.core.repo import UnknownRevision
    from muse.errors import NotFound

    words = list(args.words)
    if words and words[0] == "show":
        words.pop(0)
    elif words and words[0] in ("expire", "delete", "exists"):
        raise UsageError(f"muse reflog {words[0]} is not supported")
    if len(words) > 1:
        raise UsageError("muse reflog [show] [REF]: one ref at a time")
    name = words[0] if words else "HEAD"
    repo = open_repo()
    try:
        ref = repo.log_ref(name)
    except UnknownRevision as e:
        raise NotFound(str(e)) from None
    entries = reflog.read(repo.muse_dir, ref)
    shown = name if name != "@" else "HEAD"
    out = []
    for i, ent in enumerate(reversed(entries)):
        if args.max_count is not None and i >= args.max_count:
            break
        out.append(f"{short(ent.new)} {shown}@{{{i}}}: {ent.message}\n")
    sys.stdout.write("".join(out))
    return 0
