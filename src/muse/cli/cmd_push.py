"""muse push: send local commits to a hub and move its branches (all or none)."""

from __future__ import annotations

import argparse
import sys
import time

from muse.cli.transfer import add_transfer_options
from muse.errors import MuseError, UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("remote", nargs="?", help="remote name (default: upstream, else origin)")
    p.add_argument("branch", nargs="?", help="branch to push, or LOCAL:REMOTE (default: current)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite the hub's branch")
    p.add_argument("--all", action="store_true", help="push every local branch")
    p.add_argument(
        "-u", "--set-upstream", action="store_true", help="make the remote branch the upstream"
    )
    add_transfer_options(p)


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.cli.transfer import summary
    from muse.client.progress import Progress
    from muse.client.push import push
    from muse.client.remotes import default_remote, get_url, set_upstream
    from muse.core.refnames import HEADS, RefNameError, check_branch_name

    t0 = time.monotonic()
    repo = open_repo()
    current = repo.current_branch()
    remote = args.remote or default_remote(repo, current)
    pairs: list[tuple[str, str]] = []
    if args.all:
        if args.branch:
            raise UsageError("--all pushes every branch: name no branch")
        pairs = [(r[len(HEADS) :],) * 2 for r in repo.refs.list(HEADS)]  # type: ignore[misc]
        if not pairs:
            raise MuseError("there are no branches with commits to push")
    else:
        spec = args.branch or current
        if spec is None:
            raise UsageError("HEAD is detached: name the branch to push")
        local, _, dst = spec.partition(":")
        try:
            check_branch_name(local)
            check_branch_name(dst or local)
        except RefNameError as e:
            raise UsageError(str(e)) from None
        pairs = [(local, dst or local)]
    progress = Progress(args.quiet or args.json)
    res = push(repo, remote, pairs, force=args.force, path=args.path, progress=progress)
    if args.set_upstream:
        for local, dst in pairs:
            set_upstream(repo, local, remote, dst)
    if not args.quiet and not args.json:
        url = get_url(repo, remote)
        if not res.updates:
            sys.stderr.write(f"Everything up-to-date ({url})\n")
        else:
            sys.stderr.write(f"To {url}\n")
            for u in res.updates:
                dst = u.ref[len(HEADS) :]
                if u.old is None:
                    what = "[new branch]"
                else:
                    sep = "..." if u.force else ".."
                    what = f"{u.old.hex()[:12]}{sep}{u.new.hex()[:12]}"
                    if u.force:
                        what += " (forced)"
                sys.stderr.write(f"   {what}  {u.local} -> {dst}\n")
            sys.stderr.write(f"{res.objects} objects, {res.bytes} bytes via {res.path}\n")
        if args.set_upstream:
            for local, dst in pairs:
                sys.stderr.write(f"branch '{local}' now tracks '{remote}/{dst}'\n")
    if args.json:
        summary(
            "push",
            res,
            t0,
            updated=[u.ref for u in res.updates],
            chunks_sent=res.chunks_sent,
            chunks_deduplicated=res.chunks_deduplicated,
            negotiate_seconds=round(res.negotiate_seconds, 6),
        )
    return 0
