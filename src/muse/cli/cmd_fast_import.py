"""muse fast-import: read a ``git fast-export`` stream (a git history) into this repository."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", default="-", help="the stream (default: standard input, '-')")
    p.add_argument("--force", action="store_true", help="replace refs that would lose commits")
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.core.fastimport import fast_import

    repo = open_repo()
    if args.file == "-":
        stats = fast_import(repo, sys.stdin.buffer, force=args.force)
    else:
        with open(args.file, "rb") as f:
            stats = fast_import(repo, f, force=args.force)
    if not args.quiet:
        sys.stdout.write(
            f"imported {stats.commits} commits, {stats.blobs} blobs, {len(stats.refs)} refs\n"
        )
        if stats.skipped_submodules:
            sys.stdout.write(f"warning: {stats.skipped_submodules} submodule entries skipped\n")
        if stats.tags_lightened:
            sys.stdout.write(
                f"note: {stats.tags_lightened} tags imported as lightweight tags "
                "(their messages are not kept)\n"
            )
        branch = repo.current_branch()
        if branch is not None and f"refs/heads/{branch}" in stats.refs:
            sys.stdout.write(f"run 'muse checkout --force {branch}' to fill the working tree\n")
    return 0
