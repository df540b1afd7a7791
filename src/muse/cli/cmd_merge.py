"""muse merge: merge a branch or commit into the current branch (three-way, file level)."""

from __future__ import annotations

import argparse
import sys

from muse.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", help="branch, remote-tracking branch or commit")
    p.add_argument("-m", "--message", help="message of the merge commit")
    p.add_argument("--abort", action="store_true", help="give up a merge that has conflicts")
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo, resolve
    from muse.cli.errors import merge_conflict
    from muse.core import merge as m

    repo = open_repo()
    if args.abort:
        if args.target:
            raise UsageError("--abort takes no branch")
        m.abort(repo)
        if not args.quiet:
            sys.stderr.write("Merge aborted.\n")
        return 0
    if not args.target:
        raise UsageError("what to merge? muse merge <branch|commit>")
    if repo.current_branch() is None:
        raise UsageError("HEAD is detached: check out a branch to merge into")
    theirs = resolve(repo, args.target)
    msg = args.message + ("\n" if not args.message.endswith("\n") else "") if args.message else None
    label = (
        f"branch '{args.target}'" if repo.refs.read(f"refs/heads/{args.target}") else args.target
    )
    res = m.merge(repo, theirs, label, msg)
    if not args.quiet:
        msgs = {
            "up-to-date": "Already up to date.",
            "fast-forward": f"Fast-forward ({res.written} files written)",
            "merged": f"Merge made ({res.commit.hex()[:12] if res.commit else ''}).",
            "conflict": "Automatic merge failed.",
        }
        sys.stderr.write(msgs[res.kind] + "\n")
    if res.kind == "conflict":
        raise merge_conflict(res.conflicts)
    return 0
