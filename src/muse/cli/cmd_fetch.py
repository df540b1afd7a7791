"""muse fetch: download a hub's new objects and update the remote-tracking branches."""

from __future__ import annotations

import argparse
import sys
import time

from muse.cli.transfer import add_transfer_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("remote", nargs="?", help="remote name (default: upstream, else origin)")
    p.add_argument("branch", nargs="*", help="only these branches (default: all)")
    tags = p.add_mutually_exclusive_group()
    tags.add_argument("-t", "--tags", action="store_true", help="the hub's tags too (the default)")
    tags.add_argument("-n", "--no-tags", action="store_true", help="no tags, only branches")
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
    res = fetch(repo, remote, args.branch or None, args.path, progress, tags=not args.no_tags)
    tr = res.transfer
    if not args.quiet and not args.json and (res.updated or res.tags_kept):
        sys.stderr.write(f"From {get_url(repo, remote)}\n")
        for ref, (old, new) in sorted(res.updated.items()):
            if ref.startswith("refs/tags/"):
                name = ref[len("refs/tags/") :]
                sys.stderr.write(f"   [new tag]  {name} -> {name}\n")
                continue
            name = ref[len("refs/remotes/") :]
            what = "[new branch]" if old is None else f"{old.hex()[:12]}..{new.hex()[:12]}"
            sys.stderr.write(f"   {what}  -> {name}\n")
    if not args.quiet:
        for name in res.tags_kept:
            sys.stderr.write(
                f" ! [rejected]  {name} -> {name} (would clobber the local tag: "
                f"'muse tag -d {name}' first to take the hub's)\n"
            )
    if args.json:
        summary("fetch", tr, t0, updated=sorted(res.updated))
    return 0
