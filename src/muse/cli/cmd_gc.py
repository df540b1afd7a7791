"""muse gc: pack loose objects and merge small packs (what commands also do on their own)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--auto",
        action="store_true",
        help="only when over gc.auto loose objects or gc.autoPackLimit packs (as after commit)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.2f} MiB"


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.core import repack

    repo = open_repo()
    try:
        res = repack.auto(repo) if args.auto else repack.repack(repo)
    except repack.LockHeld:
        sys.stderr.write("muse: another gc is running in this repository; nothing done\n")
        return 0
    if args.quiet or res is None:
        return 0
    if res.pack is None:
        sys.stdout.write("nothing to pack\n")
        return 0
    s = "" if res.loose == 1 else "s"
    p = "" if res.packs == 1 else "s"
    sys.stdout.write(
        f"packed {res.loose} loose object{s} and {res.packs} pack{p} into {res.pack}: "
        f"{res.objects} objects, {_mib(res.bytes_before)} -> {_mib(res.bytes_after)}\n"
    )
    return 0
