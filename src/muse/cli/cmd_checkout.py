"""muse checkout: switch to a branch, or to a commit (detached HEAD), or create a branch."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from muse.errors import MuseError, NotFound, UsageError

if TYPE_CHECKING:
    from muse.core.repo import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", help="branch or commit (with --ours/--theirs: a path)")
    p.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    side = p.add_mutually_exclusive_group()
    side.add_argument("--ours", action="store_true", help="a conflicted PATH: our version")
    side.add_argument("--theirs", action="store_true", help="a conflicted PATH: their version")
    p.add_argument("-b", dest="new_branch", metavar="BRANCH", help="create BRANCH and switch")
    p.add_argument("-f", "--force", action="store_true", help="discard local changes")
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo, resolve, short
    from muse.cli.cmd_branch import track_start
    from muse.client.progress import Progress
    from muse.core.checkout import CheckoutConflict, UnsafePath, checkout_tree
    from muse.core.refnames import HEADS, RefNameError, branch_ref
    from muse.core.refs import RefConflict

    repo = open_repo()
    if args.ours or args.theirs or args.paths:
        return _take_side(repo, args)
    try:
        if args.new_branch:
            new_ref = branch_ref(args.new_branch)
            if repo.refs.read(new_ref) is not None:
                raise MuseError(f"a branch named '{args.new_branch}' already exists")
            start = resolve(repo, args.target) if args.target else repo.head_commit()
            if start is None:  # unborn: just point HEAD at the new (unborn) branch
                repo.refs.set_head(new_ref)
                return 0
            tree = repo.read_commit(start).tree
            checkout_tree(repo, tree, force=args.force, progress=Progress(args.quiet))
            repo.refs.update(new_ref, start, None)
            repo.refs.set_head(new_ref)
            track_start(repo, args.new_branch, args.target, args.quiet)
            if not args.quiet:
                print(f"Switched to a new branch '{args.new_branch}'")
            return 0
        if not args.target:
            raise UsageError("what to check out? muse checkout <branch|commit>")
        ref: str | None = None
        if not args.target.startswith("refs/"):
            try:
                cand = branch_ref(args.target)
                if repo.refs.read(cand) is not None:
                    ref = cand
            except RefNameError:
                pass
        elif args.target.startswith(HEADS) and repo.refs.read(args.target) is not None:
            ref = args.target
        if ref is None and _remote_only(repo, args.target):
            # as git: "topic" with only origin/topic creates a branch that tracks it
            return _checkout_tracking(repo, args)
        oid = repo.refs.read(ref) if ref else resolve(repo, args.target)
        if oid is None:
            raise NotFound(f"unknown branch or commit {args.target!r}")
        checkout_tree(
            repo, repo.read_commit(oid).tree, force=args.force, progress=Progress(args.quiet)
        )
        if ref is not None:
            repo.refs.set_head(ref)
            if not args.quiet:
                print(f"Switched to branch '{ref[len(HEADS) :]}'")
        else:
            repo.refs.set_head_detached(oid)
            if not args.quiet:
                print(f"HEAD is now at {short(oid)} (detached)")
        return 0
    except CheckoutConflict as e:
        raise MuseError(str(e)) from None
    except (UnsafePath, RefNameError, RefConflict) as e:
        raise MuseError(str(e)) from None


def _remote_only(repo: Repository, name: str) -> bool:
    """Whether ``name`` is no branch, tag or commit here but a remote's branch."""
    from muse.client.remotes import remotes_with_branch
    from muse.core.repo import UnknownRevision

    if name.startswith("refs/"):
        return False
    try:
        repo.resolve(name)
        return False
    except UnknownRevision:
        pass
    found = remotes_with_branch(repo, name)
    if len(found) > 1:
        raise MuseError(
            f"'{name}' matched {len(found)} remote-tracking branches "
            f"({', '.join(r + '/' + name for r in found)}): "
            f"use muse checkout -b {name} REMOTE/{name}"
        )
    return bool(found)


def _checkout_tracking(repo: Repository, args: argparse.Namespace) -> int:
    from muse.client.remotes import remotes_with_branch

    remote = remotes_with_branch(repo, args.target)[0]
    args.new_branch, args.target = args.target, f"{remote}/{args.target}"
    return run(args)


def _take_side(repo: Repository, args: argparse.Namespace) -> int:
    """``muse checkout --ours|--theirs PATH...``: one side's version of conflicted files."""
    import os

    from muse.core import merge as m

    if not (args.ours or args.theirs):
        raise UsageError("checkout takes one branch or commit (paths need --ours or --theirs)")
    raw = [a for a in [args.target, *args.paths] if a and a != "--"]
    if not raw:
        raise UsageError("which files? muse checkout --ours|--theirs PATH...")
    cwd = os.path.relpath(os.getcwd(), repo.root)
    paths = [os.path.normpath(os.path.join(cwd, p)).replace(os.sep, "/") for p in raw]
    side = "ours" if args.ours else "theirs"
    try:
        done = m.take_side(repo, paths, side)
    except m.MergeError as e:
        raise MuseError(str(e)) from None
    if not args.quiet:
        n = len(done)
        print(
            f"Updated {n} path{'' if n == 1 else 's'} with {side} version; 'muse resolve' to mark"
        )
    return 0
