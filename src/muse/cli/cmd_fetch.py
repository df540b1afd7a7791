"""muse fetch: download a hub's new objects and update the remote-tracking branches."""

from __future__ import annotations

import argparse
import sys
import time

from muse.cli.transfer import add_transfer_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("remote", nargs="?", help="remote name (default: upstream, else origin)")
    p.add_argument("branch", nargs="*", help="only these branches (default: all)")
    add_transfer_options(p)


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.cli.transfer import summary
    from muse.client.fetch import fetch
    from muse.client.progress import Progress
    from muse.client.remotes import default_remote, get_url

    t0 = time.monotonic()
    repo = open_repo()
    remote = args.remote or default_remote(repo, repo.current_branch())
    progress = Progress(args.quiet or args.json)
    res = fetch(repo, remote, args.branch or None, args.path, progress)
    tr = res.transfer
    if not args.quiet and not args.json and res.updated:
        sys.stderr.write(f"From {get_url(repo, remote)}\n")
        for ref, (old, new) in sorted(res.updated.items()):
            name = ref[len("refs/remotes/") :]
            what = "[new branch]" if old is None else f"{old.hex()[:12]}..{new.hex()[:12]}"
            sys.stderr.write(f"   {what}  -> {name}\n")
    if args.json:
        summary("fetch", tr, t0, updated=sorted(res.updated))
    return 0
