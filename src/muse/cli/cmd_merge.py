"""muse merge: merge a branch or commit into the current branch (three-way, line level)."""

from __future__ import annotations

import argparse
import sys

from muse.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", help="branch, remote-tracking branch or commit")
    p.add_argument("-m", "--message", help="message of the merge commit")
    p.add_argument("--abort", action="store_true", help="give up a merge that has conflicts")
    ff = p.add_mutually_exclusive_group()
    ff.add_argument("--ff-only", action="store_true", help="only fast-forward; refuse a real merge")
    ff.add_argument(
        "--no-ff",
        action="store_true",
        help="record a merge commit even when a fast-forward is possible",
    )
    p.add_argument(
        "--conflict",
        choices=["merge", "diff3"],
        help="conflict markers: ours/theirs (merge), or with the base's lines too (diff3)",
    )
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
    ff = "only" if args.ff_only else "never" if args.no_ff else "auto"
    try:
        res = m.merge(repo, theirs, label, msg, ff=ff, style=args.conflict)
    except m.MergeError as e:
        if ff == "only" and "fast-forward" in str(e):
            sys.stderr.write("fatal: Not possible to fast-forward, aborting.\n")
        raise
    if not args.quiet:
        report(res)
    if res.kind == "conflict":
        raise merge_conflict(res.conflicts)
    return 0


#: How git names a conflict of each kind.
_KIND_WORDS = {
    "content": "content",
    "add/add": "add/add",
    "binary": "content",
    "symlink": "content",
    "mode": "mode",
    "modify/delete": "modify/delete",
    "directory/file": "directory/file",
}


def report(res: object) -> None:
    """What git prints for a merge: the outcome, and each conflict with its kind."""
    kind = getattr(res, "kind", "")
    commit = getattr(res, "commit", None)
    if kind == "up-to-date":
        sys.stderr.write("Already up to date.\n")
    elif kind == "fast-forward":
        n = getattr(res, "written", 0)
        sys.stderr.write(f"Fast-forward ({n} file{'' if n == 1 else 's'} written)\n")
    elif kind == "merged":
        sys.stderr.write(
            f"Merge made by the three-way strategy ({commit.hex()[:12] if commit else ''}).\n"
        )
    elif kind == "conflict":
        kinds = getattr(res, "kinds", {})
        for path in getattr(res, "conflicts", []):
            k = kinds.get(path, "content")
            extra = ""
            if k == "binary":
                extra = " (binary: ours kept; 'muse checkout --theirs' takes theirs)"
            elif k == "modify/delete":
                extra = " (deleted on one side, changed on the other: the changed file kept)"
            elif k == "directory/file":
                extra = " (a file on one side, a directory on the other: ours kept)"
            sys.stderr.write(
                f"CONFLICT ({_KIND_WORDS.get(k, k)}): Merge conflict in {path}{extra}\n"
            )
        sys.stderr.write(
            "Automatic merge failed; fix conflicts, 'muse resolve' them, then commit.\n"
        )
