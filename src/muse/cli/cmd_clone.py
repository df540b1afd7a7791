"""muse clone: copy a hub repository into a new directory, with its working tree."""

from __future__ import annotations

import argparse
import sys
import time

from muse.cli.transfer import add_transfer_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="http(s)://host:port/owner/repo")
    p.add_argument("directory", nargs="?", help="where to create it (default: the repo's name)")
    p.add_argument("-b", "--branch", help="check out this branch (default: the hub's default)")
    add_transfer_options(p)


def run(args: argparse.Namespace) -> int:
    from muse.cli.transfer import summary
    from muse.client.clone import clone
    from muse.client.progress import Progress

    t0 = time.monotonic()
    progress = Progress(args.quiet or args.json)
    if not args.quiet and not args.json:
        from muse.client.clone import default_directory

        sys.stderr.write(f"Cloning into '{args.directory or default_directory(args.url)}'...\n")
    res = clone(args.url, args.directory, args.branch, args.path, progress)
    tr = res.transfer
    if args.json:
        summary("clone", tr, t0, res.restore_seconds, files=res.files, branch=res.branch)
    elif not args.quiet:
        if tr.objects == 0:
            sys.stderr.write("warning: you appear to have cloned an empty repository.\n")
        else:
            sys.stderr.write(
                f"{tr.objects} objects, {tr.bytes} bytes via {tr.path}; {res.files} files\n"
            )
    return 0
