"""muse pull: fetch a branch from a hub, then fast-forward or merge into the current branch."""

from __future__ import annotations

import argparse
import sys
import time

from muse.cli.transfer import add_transfer_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("remote", nargs="?", help="remote name (default: upstream, else origin)")
    p.add_argument("branch", nargs="?", help="remote branch (default: the upstream)")
    ff = p.add_mutually_exclusive_group()
    ff.add_argument(
        "--ff-only", action="store_true", help="only fast-forward; refuse when diverged"
    )
    ff.add_argument("--no-ff", action="store_true", help="always record a merge commit")
    add_transfer_options(p)


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.cli.errors import merge_conflict
    from muse.cli.transfer import summary
    from muse.client.progress import Progress
    from muse.client.pull import pull

    t0 = time.monotonic()
    repo = open_repo()
    progress = Progress(args.quiet or args.json)
    ff = "only" if args.ff_only else "never" if args.no_ff else "auto"
    res = pull(repo, args.remote, args.branch, args.path, progress, ff=ff)
    tr = res.fetched.transfer
    if args.json:
        summary("pull", tr, t0, res.restore_seconds, result=res.kind, conflicts=res.conflicts)
    elif not args.quiet:
        msgs = {
            "up-to-date": "Already up to date.",
            "fast-forward": f"Fast-forward ({res.files} files written)",
            "merged": f"Merged {res.remote}/{res.branch} (merge commit made)",
            "conflict": "Automatic merge failed.",
        }
        sys.stderr.write(msgs.get(res.kind, res.kind) + "\n")
    if res.kind == "conflict":
        raise merge_conflict(res.conflicts)
    return 0
